"""Writing a run's features in other projects' layouts: ``extract export nextqa`` and
``extract export masn``, and a run's detections in the ``--detections`` format."""

from extract.export.detections import export_run_detections
from extract.export.nextqa import export_nextqa

__all__ = ["export_nextqa", "export_run_detections"]
