from extract.cli import main

if __name__ == "__main__":  # decode child processes import this module again
    main()
