"""unilandmark: anatomical landmark detection in medical images.

One model for several anatomies (GU2Net), scored honestly in millimetres, predicting on
new scans and shipping to production. The public API is listed in ``__all__``.
"""

from .core.geometry import fit_geometry, resize_to_input
from .core.metrics import radial_errors, sdr, summarise
from .core.types import DatasetSpec, Geometry, Prediction, Record, Sample
from .core.version import __version__
from .data.adapters.catalog import (
    DATASETS,
    build_dataset,
    dha_hand,
    isbi2015,
    labelme_dataset,
    shenzhen_chest,
    synthetic_dataset,
)
from .data.adapters.csv import csv_dataset
from .data.faults import DatasetError, Fault
from .data.synthetic import make_synthetic, render_phantom
from .data.validate import check_dataset
from .evaluation.protocols import PROTOCOLS, Protocol, get_protocol
from .evaluation.scoring import evaluate, export_ground_truth
from .imageio.read import ImageReadError, read_image, read_image_info
from .predictions.table import PredictionError, read_predictions, write_predictions


def __getattr__(name: str):
    """``Detector`` (prediction with a trained model) on first use: ``import unilandmark``
    stays light (no torch) for data and scoring work."""
    if name == "Detector":
        from .inference.detector import Detector

        return Detector
    raise AttributeError(f"module 'unilandmark' has no attribute {name!r}")


__all__ = [
    "DATASETS", "PROTOCOLS", "DatasetError", "DatasetSpec", "Detector", "Fault", "Geometry",
    "ImageReadError", "Prediction", "PredictionError", "Protocol", "Record", "Sample",
    "build_dataset", "check_dataset", "csv_dataset", "dha_hand", "evaluate",
    "export_ground_truth", "fit_geometry", "get_protocol", "isbi2015", "labelme_dataset",
    "make_synthetic", "radial_errors", "read_image", "read_image_info", "read_predictions",
    "render_phantom", "resize_to_input", "sdr", "shenzhen_chest", "summarise",
    "synthetic_dataset", "write_predictions", "__version__",
]
