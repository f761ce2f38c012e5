"""Write small DICOM files with pydicom for the reader tests (uncompressed, explicit VR)."""

from __future__ import annotations

import numpy as np


def write_dicom(path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
                bits_stored: int | None = None, preamble: bool = True, **elements):
    """Write ``pixels`` (uint8 or uint16, (H, W)) as a DX image; ``elements`` are set on
    the data set by keyword (PixelSpacing=[r, c], WindowCenter=..., ...)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    pixels = np.ascontiguousarray(pixels)
    bits = 8 if pixels.dtype == np.uint8 else 16
    stored = bits_stored or bits
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = "test"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (
        bits, stored, stored - 1, 0)
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    if not preamble:  # DICOM without the 128-byte preamble and 'DICM'
        data = open(path, "rb").read()
        open(path, "wb").write(data[132:])
    return path
