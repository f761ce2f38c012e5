"""Layer 0: the contracts (Record, Geometry, Prediction, DatasetSpec), geometry between
original and network space, metrics, limits, atomic writes, the run-folder lock
(``folder_lock``), the image-id rule, console and wording. Imports nothing else of the
package.
"""
