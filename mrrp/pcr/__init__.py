"""pCR prediction from breast DCE-MRI with stepwise clinically-guided attention (issue 8).

    MRI files ─ mrrp.pcr.io.read_mri / read_mask ─> MRIStudy (+ mask) ─ to_working ─> WorkingVolume
              ─ mrrp.pcr.model.StepwisePCRNet ─> image-only, guided and clinical-fused logits + attention
    mrrp.pcr.synth   the synthetic multi-site cohort (`mrrp pcr-synth`)
    mrrp.pcr.train   three-stage training, baselines, external evaluation, report (`mrrp pcr-train`)
    mrrp.pcr.predict one patient → probability with interval, stage outputs, attention (`mrrp pcr-predict`)
    mrrp.pcr.bundle  the model bundle on disk, with checksums

Importing this package is cheap: torch, pydicom, nibabel and scipy are imported where used.
"""
