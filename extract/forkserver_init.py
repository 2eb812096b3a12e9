"""Imported first by the decoding forkserver (``DecodePool``'s preload list), and by nothing
else: the server then dies with the process that started it (``lifetime.die_with_parent``)."""

from extract.lifetime import die_with_parent

die_with_parent()
