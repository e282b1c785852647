"""Limits of what the MRI reader accepts, and the working grid everything is resampled to."""

from __future__ import annotations

# The working grid: a RAS-aligned box of 128 x 128 x 96 mm (one breast with its chest wall) centred on
# the volume, at 2 x 2 x 3 mm. Small enough for a 3D CNN on one CPU thread; tumours of 10 mm or more
# still span several voxels.
WORKING_SPACING_MM = (2.0, 2.0, 3.0)  # (x, y, z) = (R, A, S)
WORKING_SHAPE = (64, 64, 32)
MIN_PHASES = 3  # pre-contrast + at least two post-contrast phases

MAX_FILE_BYTES = 2 * 1024**3  # any single file
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3  # uncompressed, all members
MAX_ZIP_RATIO = 200  # compressed → uncompressed; far above what image data reaches (a zip bomb is ~1000:1)
# All members together: DICOM series compress 1.5-4:1. Thousands of members each just under the
# per-member check still add up, so the whole zip may unpack to at most this ratio of its own size
# (or to the free allowance, whichever is larger).
MAX_ZIP_TOTAL_RATIO = 50
ZIP_FREE_ALLOWANCE_BYTES = 64 * 1024**2
MAX_CACHED_ZIPS = 4  # unpacked zips kept (per server process, in a temporary folder) for reruns
MAX_VOXELS_PER_PHASE = 64_000_000  # 512 x 512 x 244
MAX_VOXELS_TOTAL = 256_000_000  # all phases: 1 GB as float32

# A volume smaller than this covers too little of the working box to show a breast: refuse, not extrapolate.
MIN_VOXELS_PER_AXIS = 8
MIN_FIELD_OF_VIEW_MM = 32.0  # per axis: a quarter of the 128 mm working box
MIN_PLAUSIBLE_VOXEL_MM = 0.1
MAX_PLAUSIBLE_VOXEL_MM = 20.0
GEOMETRY_ATOL_MM = 0.05  # voxel size / position differences below this are rounding, not a different grid
ORIENTATION_ATOL = 1e-3  # direction cosines

ACCEPTED = "a DICOM series (folder or zip) or NIfTI files (.nii, .nii.gz)"
