"""unilandmark: anatomical landmark detection in medical images.

One model for several anatomies (GU2Net), scored honestly in millimetres, predicting on
new scans and shipping to production. The public API is listed in ``__all__``.
"""

from .data.catalog import (
    DATASETS,
    build_dataset,
    dha_hand,
    isbi2015,
    labelme_dataset,
    shenzhen_chest,
    synthetic_dataset,
)
from .data.faults import DatasetError, Fault
from .data.synthetic import make_synthetic, render_phantom
from .data.tables import csv_dataset
from .data.validate import check_dataset
from .evaluate import (
    PredictionError,
    evaluate,
    export_ground_truth,
    read_predictions,
    write_predictions,
)
from .geometry import fit_geometry, resize_to_input
from .io import ImageReadError, read_image, read_image_info
from .metrics import radial_errors, sdr, summarise
from .protocols import PROTOCOLS, Protocol, get_protocol
from .types import DatasetSpec, Geometry, Prediction, Record, Sample

__version__ = "0.1.0"

__all__ = [
    "DATASETS", "PROTOCOLS", "DatasetError", "DatasetSpec", "Fault", "Geometry",
    "ImageReadError", "Prediction", "PredictionError", "Protocol", "Record", "Sample",
    "build_dataset", "check_dataset", "csv_dataset", "dha_hand", "evaluate",
    "export_ground_truth", "fit_geometry", "get_protocol", "isbi2015", "labelme_dataset",
    "make_synthetic", "radial_errors", "read_image", "read_image_info", "read_predictions",
    "render_phantom", "resize_to_input", "sdr", "shenzhen_chest", "summarise",
    "synthetic_dataset", "write_predictions", "__version__",
]
