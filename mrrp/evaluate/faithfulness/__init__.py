"""Are the explanations faithful to the model, and do they find what the synthetic cohort planted?

``python -m mrrp.evaluate.faithfulness --model assets/models/mrrp-demo --cohort data/cohort
--out docs/explanations.json`` runs, over the internal test split of a synthetic cohort written by
``mrrp synth`` (it needs truth.csv and the truth/<id>_tumour.png masks):

- **Deletion** (patients with a slide): mask the top 10% of tiles by |score| out of the slide
  (``tiles_mask``) and compare |change in log-risk| with masking a random 10% (20 draws per
  patient). Reported as the ratio of the cohort means, with a patient-bootstrap 95% CI.
- **Localisation**: a tile is "in the tumour" when more than half of its footprint lies in the
  ground-truth tumour mask. AUC of the tile scores against that label (per patient, averaged),
  and the fraction of the top-k tiles inside the tumour, next to chance (the tumour fraction of
  the patient's tiles). Slides of the demo cohort have ~20 tiles, so "top 20" would be the whole
  slide: k = min(20, ceil(20% of the tiles)), stated in the output.
- **Modality ranking**: mean |Shapley| per modality over test patients who have it, ranked against
  the generating model's own ranking, measured rather than assumed: the Shapley decomposition of the
  R^2 with which each modality's *observed* generating parameters (truth.csv, the clinical record)
  explain the true log-hazard (linear regressions on every subset of modalities, 5-fold
  cross-validated R^2).
- **Model randomisation** (Adebayo et al., 2018): re-initialise the fusion model's weights,
  top-down in cascade (read-out head first) and all at once, and correlate (Spearman) the tile
  attributions with the trained model's. Faithful attributions change.

Scores are reported for Integrated Gradients (the headline: the signed tile explanation
``mrrp explain --heatmap`` draws by default; |IG| for deletion and localisation,
since both directions of evidence sit in the tumour) and, beside it, for the pathology attention.

The parts: :mod:`.metrics` (the checks, one patient or one set of scores at a time), :mod:`.truth` (the
generating model's modality importance), :mod:`.run` (the study over a cohort: ``run.run``),
:mod:`.report` (docs/explanations.md and docs/img/explain_*.png), :mod:`.cli` (the command). The JSON
(written atomically), the Markdown page and the pictures are all produced by ``run.run``, so a retrained
bundle gets new numbers and pictures by re-running the command.
"""
