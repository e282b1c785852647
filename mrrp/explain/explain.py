"""Why one patient's risk is what it is, at every level a tumour board asks about.

:func:`explain_case` computes, for one patient and one model bundle (all risk numbers in centred
log-risk units of the ensemble mean, the scale of ``Prediction.log_risk``):

- **Modalities, exact Shapley values.** The model replaces an absent modality by its learned
  compensation tokens, so "the model without modality m" is a real forward pass, not a zero-fill.
  Every subset S of the present modalities is evaluated (at most 2^4 = 16 rows, one batched forward
  per ensemble member) and the Shapley formula is applied exactly; the values sum to
  f(all present) - f(none present), where f(none present) is the "reference patient" the model
  falls back to with nothing known. Counterfactuals (risk with each modality removed) are rows of
  the same batch.
- **Modalities, attention shares.** Attention rollout (Abnar & Zuidema, 2020) through the
  inter-modality transformer: each self-attention layer's head-averaged weights A become
  0.5 A + 0.5 I (the residual stream), are multiplied from the first layer to the last, and the
  fusion read-out attention (its head average, which torch returns; plus 0.5 I for the residual
  of the "pathology"/"clinical" query strategies, whose queries are tokens) is multiplied onto
  them. Token columns m*Q:(m+1)*Q belong to modality m. Fusion queries and ensemble members are
  averaged. Attention on absent modalities' compensation tokens is reported apart
  (``attention_to_compensation``); the shares of the present modalities are renormalised to 1.
- **Slide tiles.** Attention: the pathology intra-attention weights (head average), averaged over
  the modality's queries and the members. Integrated Gradients (captum): on the tile feature
  vectors, from a baseline slide in which every tile is the patient's own mean tile (a zero
  baseline is meaningless here: the tile projection starts with a LayerNorm, which is blind to
  scale, so the whole IG path would sit at the origin), summed over the feature dimension.
  Positive = pushed the risk up.
- **Clinical fields.** Integrated Gradients (captum ``LayerIntegratedGradients`` on each member's
  clinical token encoder): the path runs in token space from every field "unknown" (the model's
  learned unknown embedding; the record itself stays present) to the patient's values; one signed
  number per field (summed over the token dimension). The model's linear clinical Cox term gets its
  exact attribution from the same baseline (w · (x − baseline), which is what IG gives for a linear
  function) added per field. Unknown fields therefore get exactly 0.
- **Report sentences.** Occlusion: the log-risk with the sentence's token masked out, subtracted
  from the full log-risk (> 0: the sentence pushed the risk up). Masking a token is not a value
  perturbation, so captum's ablation classes (which replace values) cannot express it; removing
  the only token of a modality removes the modality (then it is compensated). The first
  ``MAX_OCCLUDED_SENTENCES`` sentences of each report are explained (``methods['reports_limit']`` names
  a longer report), evaluated in row chunks of bounded size, so memory is linear in the report length.
- **Ultrasound images.** Grad-CAM (captum ``LayerGradCam``) at the last block of an eager fp32
  EfficientNet-Lite0 (the bundled encoder is a traced, frozen graph, which has no module hooks),
  through the fusion ensemble, for the whole image and its four quadrants (the five tokens of
  ``mrrp.features.case.ultrasound_tokens``); the five maps are put back where their crops came
  from, summed and scaled to [0, 1] per image.

Every torch call runs on one intra-op thread (``torch_threads(1)``): on a shared 2-core machine
more threads are slower. Batched subsets and IG steps keep one patient's explanation within
seconds (benchmarks/bench_explain.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import torch

from mrrp.errors import InputError
from mrrp.explain.types import Explanation, SentenceAttribution, TileAttribution
from mrrp.features.case import CLINICAL_TOKEN_FIELDS, CaseFeatures
from mrrp.model.bundle import LoadedBundle
from mrrp.model.fusion import MODALITIES

# Float elements of tile features one batched forward may expand to: (rows x N_tiles x 1280) <= this
# (~160 MB in fp32). The demo cohort's ~20-tile slides fit 16 Shapley rows many times over; a
# 10^4-tile slide is evaluated a few rows at a time.
MAX_CHUNK_ELEMENTS = 40_000_000
# All float inputs of one forward (tiles, report and image tokens, masks): twice the tile budget, so the
# tile budget alone decides for ordinary patients; a report of thousands of sentences is split further.
MAX_FORWARD_ELEMENTS = 2 * MAX_CHUNK_ELEMENTS
# Sentences of one report explained by occlusion (one forward row each): the first ones, in reading
# order. Reports have tens of sentences; a pasted 100 kB text would otherwise cost thousands of rows.
MAX_OCCLUDED_SENTENCES = 200
GRADCAM_ENCODERS = ("efficientnet-lite0-imagenet", "efficientnet-lite0-imagenet-bf16")

TILE_IG_BASELINE = "every tile replaced by the patient's mean tile feature vector"
CLINICAL_IG_BASELINE = "every clinical field 'unknown' (learned unknown embedding), record kept present"
METHODS = {
    "shapley": "exact Shapley values over the present modalities; every subset evaluated through the "
    "model's learned compensation for the absent ones; ensemble mean of centred member log-risks",
    "attention_share": "attention rollout through the inter-modality transformer (0.5 A + 0.5 I per layer, "
    "head-averaged), times the fusion read-out attention; mean over fusion queries and members; shares of "
    "present modalities renormalised to 1, attention on compensation tokens reported apart",
    "tile_attention": "pathology intra-attention, head-averaged, mean over the modality's queries and members",
    "tile_ig": f"captum IntegratedGradients on tile features (Gauss-Legendre); baseline: {TILE_IG_BASELINE}",
    "clinical": f"captum LayerIntegratedGradients on each member's clinical token encoder; baseline: "
    f"{CLINICAL_IG_BASELINE}",
    "reports": "occlusion: full log-risk minus the log-risk with the sentence's token masked out",
    "us_overlays": "captum LayerGradCam at the last EfficientNet-Lite0 block (eager, fp32) through the ensemble; "
    "whole image + 4 quadrants mapped back, summed, scaled to [0, 1]",
    "counterfactual": "log-risk with one present modality removed (compensated), same batch as the Shapley subsets",
}


# -- small helpers -----------------------------------------------------------------------------


def _expand(batch: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """The one-patient ``batch`` viewed as ``rows`` identical rows (no copy)."""
    return {k: v.expand(rows, *v.shape[1:]) for k, v in batch.items()}


def _rows_per_chunk(batch: Mapping[str, Any]) -> int:
    """Rows of ``batch`` one forward may take.

    The tile budget decides, as it always has: a float sum depends on how rows are split into batches,
    so an ordinary patient's numbers stay bit for bit the published ones. Every input of a row counts
    against :data:`MAX_FORWARD_ELEMENTS` as well, which only a very long report reaches.
    """
    tiles = batch["tiles"]  # (B, N, D)
    by_tiles = MAX_CHUNK_ELEMENTS // max(1, int(tiles.shape[1]) * int(tiles.shape[2]))
    by_everything = MAX_FORWARD_ELEMENTS // max(1, sum(int(v[0].numel()) for v in batch.values()))
    return max(1, min(by_tiles, by_everything))


def ensemble_log_risk(bundle: LoadedBundle, batch: Mapping[str, Any], present: Any) -> np.ndarray:
    """(B,) ensemble-mean centred log-risk of ``batch`` rows with ``present`` (B, 4), in memory-bounded chunks.

    Uses :func:`mrrp.model.predict.member_log_risks`, so the numbers are exactly the prediction's.
    """
    from mrrp.model.predict import member_log_risks

    rows = int(present.shape[0])
    step = _rows_per_chunk(batch)
    out = []
    for start in range(0, rows, step):
        part = {k: v[start : start + step] for k, v in batch.items()}
        out.append(member_log_risks(bundle, part, present[start : start + step]).mean(axis=0))  # (b,)
    return np.concatenate(out)


def _ensemble_forward(bundle: LoadedBundle, batch: Mapping[str, Any], present: Any):
    """Differentiable (B,) ensemble-mean centred log-risk (float32 tensor), for captum."""
    total = None
    for model, offset in zip(bundle.models, bundle.member_offsets, strict=True):
        lr = model(batch, present)[0] - float(offset)  # (B,)
        total = lr if total is None else total + lr
    return total / len(bundle.models)


# -- Shapley values -----------------------------------------------------------------------------


def subset_masks(present: Sequence[bool]) -> np.ndarray:
    """(2^k, M) bool: every subset of the present modalities, row s = the subset with bit mask s over them."""
    players = [m for m, p in enumerate(present) if p]
    masks = np.zeros((2 ** len(players), len(present)), bool)
    for s in range(2 ** len(players)):
        for j, m in enumerate(players):
            masks[s, m] = bool(s >> j & 1)
    return masks


def shapley_from_subsets(values: Mapping[frozenset[int], float], players: Sequence[int]) -> dict[int, float]:
    """Exact Shapley values of ``players`` from the value of every subset (``frozenset`` of players).

    phi_i = sum over S not containing i of |S|! (k - |S| - 1)! / k! * (v(S + i) - v(S)); the values sum
    to v(all) - v(empty) (efficiency).
    """
    k = len(players)
    phi: dict[int, float] = {}
    for i in players:
        others = [p for p in players if p != i]
        total = 0.0
        for r in range(len(others) + 1):
            weight = math.factorial(r) * math.factorial(k - r - 1) / math.factorial(k)
            for combo in combinations(others, r):
                s = frozenset(combo)
                total += weight * (values[s | {i}] - values[s])
        phi[i] = total
    return phi


def modality_subset_values(bundle: LoadedBundle, batch: Mapping[str, Any]) -> dict[frozenset[int], float]:
    """f(S) for every subset S of the patient's present modalities, in one batched pass per member."""
    present = batch["present"][0].numpy()  # (M,)
    masks = subset_masks(present)  # (S, M)
    values = ensemble_log_risk(bundle, _expand(batch, len(masks)), torch.from_numpy(masks))  # (S,)
    return {frozenset(np.flatnonzero(row).tolist()): float(v) for row, v in zip(masks, values, strict=True)}


# -- attention -----------------------------------------------------------------------------------


def _member_attention(model, batch: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(token share (T,), slide tile attention (N,)) of one member for a one-patient batch."""
    layer_inputs: list[Any] = []
    hooks = [
        layer.register_forward_pre_hook(lambda _mod, args: layer_inputs.append(args[0]))
        for layer in model.inter_self.layers
    ]
    try:
        _, aux = model(batch)
    finally:
        for h in hooks:
            h.remove()
    inter = aux["inter"]  # (1, Qf, T), head-averaged by torch
    t = inter.shape[-1]
    eye = torch.eye(t).unsqueeze(0)  # (1, T, T)
    rollout = eye
    for layer, x in zip(model.inter_self.layers, layer_inputs, strict=True):
        # The layer ran on its fast path (no per-module hooks inside): recompute its weights.
        h = layer.norm1(x) if layer.norm_first else x
        _, a = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=True)  # (1, T, T)
        rollout = (0.5 * a + 0.5 * eye) @ rollout
    readout = inter
    strategy = model.cfg.query_strategy
    if strategy != "learned":
        q = model.cfg.queries_per_modality
        m = MODALITIES.index("slide" if strategy == "pathology" else "clinical")
        # These queries are tokens m*Q..: the read-out keeps them through its residual.
        own = torch.zeros_like(inter)
        own[0, torch.arange(q), m * q + torch.arange(q)] = 1.0
        readout = 0.5 * inter + 0.5 * own
    token_share = (readout @ rollout).mean(dim=1)[0]  # (T,)
    tiles = aux["intra"][0][0].mean(dim=0)  # (N,)
    return token_share.double().numpy(), tiles.double().numpy()


def attention_summary(bundle: LoadedBundle, batch: Mapping[str, Any]) -> tuple[dict[str, float], float, np.ndarray]:
    """(share per modality over present ones, share on compensation tokens, tile attention (N,))."""
    with torch.no_grad():
        parts = [_member_attention(m, batch) for m in bundle.models]
    token_share = np.mean([p[0] for p in parts], axis=0)  # (M*Q,)
    tile_attention = np.mean([p[1] for p in parts], axis=0)  # (N,)
    q = len(token_share) // len(MODALITIES)
    per_modality = token_share.reshape(len(MODALITIES), q).sum(axis=1)  # (M,)
    present = batch["present"][0].numpy()
    on_present = float(per_modality[present].sum())
    shares = {
        m: (float(per_modality[i] / on_present) if present[i] and on_present > 0 else 0.0)
        for i, m in enumerate(MODALITIES)
    }
    return shares, float(per_modality[~present].sum() / per_modality.sum()), tile_attention


# -- integrated gradients ------------------------------------------------------------------------


def tile_integrated_gradients(
    bundle: LoadedBundle, batch: Mapping[str, Any], *, ig_steps: int = 32, baseline: Any = None
) -> tuple[np.ndarray, float]:
    """Signed IG per tile (N,) and the completeness error |sum - (f(x) - f(baseline))|.

    ``baseline`` (1, N, D) defaults to every tile set to the patient's mean tile (module docstring).
    """
    from captum.attr import IntegratedGradients

    x = batch["tiles"]  # (1, N, D)
    present = batch["present"]  # (1, M)
    if baseline is None:
        baseline = x.mean(dim=1, keepdim=True).expand_as(x).contiguous()

    def forward(tiles):  # (S, N, D) -> (S,)
        rows = tiles.shape[0]
        expanded = _expand(batch, rows)
        expanded["tiles"] = tiles
        return _ensemble_forward(bundle, expanded, present.expand(rows, -1))

    ig = IntegratedGradients(forward)
    attr, delta = ig.attribute(
        x,
        baselines=baseline,
        n_steps=int(ig_steps),
        internal_batch_size=min(int(ig_steps), _rows_per_chunk(batch)),
        return_convergence_delta=True,
    )
    return attr.sum(dim=-1)[0].detach().double().numpy(), float(abs(delta.item()))


def clinical_integrated_gradients(
    bundle: LoadedBundle, batch: Mapping[str, Any], *, ig_steps: int = 32
) -> tuple[dict[str, float], float]:
    """Signed IG per clinical field (one token each) and the completeness error of the ensemble sum."""
    from captum.attr import LayerIntegratedGradients

    present = batch["present"]
    inputs = (batch["clin_numeric"], batch["clin_known"], batch["clin_categorical"])
    sizes = torch.tensor(bundle.models[0].cfg.categorical_sizes, dtype=torch.long).unsqueeze(0)  # (1, F_cat)
    baselines = (torch.zeros_like(inputs[0]), torch.zeros_like(inputs[1]), sizes.expand_as(inputs[2]).clone())
    n = len(bundle.models)
    chunk = _rows_per_chunk(batch)
    total = np.zeros(len(CLINICAL_TOKEN_FIELDS))
    delta_sum = 0.0
    for model, offset in zip(bundle.models, bundle.member_offsets, strict=True):

        def forward(numeric, known, categorical, model=model, offset=offset):  # (S, F) each -> (S,)
            rows = numeric.shape[0]
            expanded = _expand(batch, rows)
            expanded.update(clin_numeric=numeric, clin_known=known, clin_categorical=categorical)
            return (model(expanded, present.expand(rows, -1))[0] - float(offset)) / n

        lig = LayerIntegratedGradients(forward, model.clinical)
        attr, delta = lig.attribute(
            inputs,
            baselines=baselines,
            n_steps=int(ig_steps),
            internal_batch_size=min(int(ig_steps), chunk),
            return_convergence_delta=True,
        )
        total += attr.sum(dim=-1)[0].detach().double().numpy()  # (F,)
        linear = _linear_clinical_attribution(model, batch, baselines) / n if bool(present[0, 3]) else 0.0
        total += linear
        # captum's delta compares the token path with f(x) − f(baseline), which also holds the linear term
        delta_sum += float(delta.item()) + float(np.sum(linear))
    return {f: float(v) for f, v in zip(CLINICAL_TOKEN_FIELDS, total, strict=True)}, abs(delta_sum)


def _linear_clinical_attribution(model, batch: Mapping[str, Any], baselines: tuple) -> np.ndarray | float:
    """Exact per-field attribution of the model's linear clinical Cox term (IG of a linear function is
    w · (x − baseline)), from the same all-unknown baseline; 0 when the model has no such term."""
    if getattr(model, "clinical_linear", None) is None:
        return 0.0
    x = {
        "clin_numeric": batch["clin_numeric"][:1],
        "clin_known": batch["clin_known"][:1],
        "clin_categorical": batch["clin_categorical"][:1],
    }
    b = {"clin_numeric": baselines[0][:1], "clin_known": baselines[1][:1], "clin_categorical": baselines[2][:1]}
    with torch.no_grad():
        contrib = (model._clinical_design(x) - model._clinical_design(b))[0] * model.clinical_linear.weight[0]
    contrib = contrib.double().numpy()
    n_num = model.cfg.n_numeric
    per_field = list(contrib[:n_num] + contrib[n_num : 2 * n_num])  # value and known indicator of each numeric field
    start = 2 * n_num
    for size in model.cfg.categorical_sizes:
        per_field.append(contrib[start : start + size + 1].sum())
        start += size + 1
    return np.array(per_field)


# -- report sentences ----------------------------------------------------------------------------


def _occlusion_rows(
    batch: Mapping[str, Any], rows: Sequence[tuple[str, int]], n_us_img: int, n_usr: int, n_pr: int
) -> tuple[dict[str, Any], Any]:
    """(occluded batch, present) for ``rows`` of (report key, sentence index): one sentence masked per row."""
    b = len(rows)
    occluded = _expand(batch, b)
    usr_mask = batch["us_report_mask"].expand(b, -1).clone()  # (b, N_r): only this chunk's rows exist
    pr_mask = batch["path_report_mask"].expand(b, -1).clone()
    present = batch["present"].expand(b, -1).clone()
    us, pr = MODALITIES.index("ultrasound"), MODALITIES.index("path_report")
    for r, (key, j) in enumerate(rows):
        if key == "us_report":
            usr_mask[r, j] = False
            if n_usr == 1 and n_us_img == 0:
                present[r, us] = False  # the only ultrasound token: the modality is gone
        else:
            pr_mask[r, j] = False
            if n_pr == 1:
                present[r, pr] = False
    occluded["us_report_mask"], occluded["path_report_mask"] = usr_mask, pr_mask
    return occluded, present


def sentence_occlusion(
    bundle: LoadedBundle, batch: Mapping[str, Any], full_log_risk: float, *, max_sentences: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(us_report (n_r,), path_report (n_p,)) signed: full log-risk minus the risk without that sentence.

    The first ``max_sentences`` (default :data:`MAX_OCCLUDED_SENTENCES`) sentences of each report are
    explained, so n_r, n_p <= that cap. Each occlusion row holds the whole patient, so rows are built and
    evaluated in chunks of at most :func:`_rows_per_chunk` rows: memory stays linear in the report length.
    """
    cap = MAX_OCCLUDED_SENTENCES if max_sentences is None else int(max_sentences)
    n_us_img = int(batch["us_images_mask"][0].sum())
    n_usr = int(batch["us_report_mask"][0].sum())
    n_pr = int(batch["path_report_mask"][0].sum())
    rows = [("us_report", j) for j in range(min(n_usr, cap))] + [("path_report", j) for j in range(min(n_pr, cap))]
    if not rows:
        return np.zeros(0), np.zeros(0)
    step = _rows_per_chunk(batch)
    without = []
    with torch.no_grad():
        for start in range(0, len(rows), step):
            occluded, present = _occlusion_rows(batch, rows[start : start + step], n_us_img, n_usr, n_pr)
            without.append(ensemble_log_risk(bundle, occluded, present))  # (b,)
    effect = full_log_risk - np.concatenate(without)
    n_first = min(n_usr, cap)
    return effect[:n_first], effect[n_first:]


def occlusion_note(n_us_report: int, n_path_report: int, cap: int = MAX_OCCLUDED_SENTENCES) -> str | None:
    """The sentence saying which sentences were explained, when a report is longer than the cap
    (``Explanation.methods["reports_limit"]``, shown beside the highlighted report)."""
    long = [(name, n) for name, n in (("ultrasound", n_us_report), ("pathology", n_path_report)) if n > cap]
    if not long:
        return None
    parts = ", ".join(f"the {name} report has {n:,}" for name, n in long)
    return f"only the first {cap:,} sentences of a report are explained ({parts}); the rest are not attributed"


# -- ultrasound Grad-CAM -------------------------------------------------------------------------

_EAGER: dict[str, Any] = {}
_EAGER_LOCK = threading.Lock()


def _eager_encoder():
    """The EfficientNet-Lite0 encoder as an eager fp32 module (hookable, differentiable); loaded once."""
    with _EAGER_LOCK:
        if "lite0" not in _EAGER:
            from mrrp.features.encoders import efficientnet_lite0

            enc = efficientnet_lite0(precision="fp32", freeze=False)
            for p in enc.module.parameters():
                p.requires_grad_(False)
            _EAGER["lite0"] = enc
        return _EAGER["lite0"]


def _crop_boxes(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of the whole image and its quadrants, as ``ultrasound_tokens`` crops them."""
    return [
        (0, h, 0, w),
        (0, h // 2, 0, w // 2),
        (0, h // 2, w // 2, w),
        (h // 2, h, 0, w // 2),
        (h // 2, h, w // 2, w),
    ]


def ultrasound_gradcam(
    bundle: LoadedBundle, batch: Mapping[str, Any], images: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """One (H, W) float32 map in [0, 1] per image: where the image's features pushed the risk up."""
    import torch.nn.functional as F
    from captum.attr import LayerGradCam
    from PIL import Image

    enc = _eager_encoder()
    size = enc.input_size_px
    crops = []
    for img in images:
        h, w = img.shape
        for y0, y1, x0, x1 in _crop_boxes(h, w):
            c = np.asarray(Image.fromarray(img[y0:y1, x0:x1]).resize((size, size), Image.Resampling.BILINEAR))
            crops.append(np.repeat(c[..., None], 3, -1))
    x = enc.preprocess(np.stack(crops))  # (5 n, 3, S, S)
    n_tokens = x.shape[0]
    present = batch["present"]
    other_mask = batch["us_images_mask"]  # (1, N_u): exactly the image tokens, checked by the caller

    def forward(pixels):  # (5 n, 3, S, S) -> (1,)
        tokens = enc.module(pixels).reshape(1, n_tokens, -1)  # (1, 5 n, 1280)
        expanded = dict(batch)
        expanded["us_images"], expanded["us_images_mask"] = tokens, other_mask
        return _ensemble_forward(bundle, expanded, present)

    cam = LayerGradCam(forward, enc.module.net._blocks[-1])
    maps = cam.attribute(x, relu_attributions=True).detach()  # (5 n, 1, 7, 7)
    out = []
    for i, img in enumerate(images):
        h, w = img.shape
        acc = torch.zeros(h, w)
        for k, (y0, y1, x0, x1) in enumerate(_crop_boxes(h, w)):
            m = maps[5 * i + k : 5 * i + k + 1]  # (1, 1, 7, 7)
            acc[y0:y1, x0:x1] += F.interpolate(m, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0, 0]
        top = float(acc.max())
        out.append((acc / top).numpy().astype(np.float32) if top > 0 else acc.numpy().astype(np.float32))
    return out


# -- the whole explanation -----------------------------------------------------------------------


def _check_us_images(bundle: LoadedBundle, case: CaseFeatures, us_images: Sequence[np.ndarray]) -> bool:
    """True when Grad-CAM can be computed; raises InputError when the images do not match the case."""
    images = list(us_images)
    if len(case.us_images) != 5 * len(images):
        raise InputError(
            f"Patient {case.patient_id} has {len(case.us_images) // 5} ultrasound image(s) in the model's inputs "
            f"but {len(images)} were given for the overlay."
        )
    for img in images:
        if np.asarray(img).ndim != 2:
            raise InputError("Ultrasound images for the overlay must be 2-D grayscale images.")
    encoder = bundle.config.get("encoders", {}).get("ultrasound_image", {}).get("name", GRADCAM_ENCODERS[0])
    return bool(images) and encoder in GRADCAM_ENCODERS


def explain_case(
    bundle: LoadedBundle,
    case: CaseFeatures,
    *,
    us_images: list[np.ndarray] | None = None,
    ig_steps: int = 32,
) -> Explanation:
    """Every explanation of one patient's prediction (module docstring for the methods).

    ``us_images`` are the grayscale uint8 images as read by ``mrrp.io.ultrasound.read_ultrasound``,
    in the order of the case's ultrasound tokens; without them ``us_overlays`` stays empty.
    """
    from mrrp._threads import torch_threads
    from mrrp.model.batch import collate

    if int(ig_steps) < 2:
        raise InputError(f"Integrated Gradients needs at least 2 steps; got {ig_steps}.")
    if not bundle.models:
        raise InputError("The model bundle holds no models.")
    do_gradcam = us_images is not None and _check_us_images(bundle, case, us_images)
    timings: dict[str, float] = {}
    completeness: dict[str, float] = {}
    batch = collate([case])
    present = batch["present"][0].numpy()  # (M,)

    with torch_threads(1):
        t0 = time.perf_counter()
        with torch.no_grad():
            values = modality_subset_values(bundle, batch)
        players = [i for i in range(len(MODALITIES)) if present[i]]
        everything = frozenset(players)
        full, reference = values[everything], values[frozenset()]
        phi = shapley_from_subsets(values, players)
        shapley = {m: float(phi.get(i, 0.0)) for i, m in enumerate(MODALITIES)}
        abs_total = sum(abs(v) for v in shapley.values())
        share = {m: (abs(v) / abs_total if abs_total > 0 else 0.0) for m, v in shapley.items()}
        counterfactual = {MODALITIES[i]: float(values[everything - {i}]) for i in players}
        timings["shapley"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        attention_share, on_compensation, tile_attention = attention_summary(bundle, batch)
        timings["attention"] = time.perf_counter() - t0

        tiles = None
        if present[MODALITIES.index("slide")]:
            t0 = time.perf_counter()
            tile_ig, completeness["tiles"] = tile_integrated_gradients(bundle, batch, ig_steps=ig_steps)
            tiles = TileAttribution(
                coords_l0=np.asarray(case.tile_coords_l0, np.int64),
                tile_size_l0=int(case.tile_size_l0),
                attention=tile_attention,
                integrated_gradients=tile_ig,
            )
            timings["tiles_ig"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if present[MODALITIES.index("clinical")]:
            clinical, completeness["clinical"] = clinical_integrated_gradients(bundle, batch, ig_steps=ig_steps)
            clinical_baseline = CLINICAL_IG_BASELINE
        else:
            clinical = {f: 0.0 for f in CLINICAL_TOKEN_FIELDS}
            clinical_baseline = "no clinical record: nothing to attribute (all fields 0)"
        timings["clinical_ig"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        us_effect, path_effect = sentence_occlusion(bundle, batch, full)
        timings["reports"] = time.perf_counter() - t0

        overlays: list[np.ndarray] = []
        if do_gradcam:
            t0 = time.perf_counter()
            overlays = ultrasound_gradcam(bundle, batch, [np.asarray(i, np.uint8) for i in us_images or []])
            timings["us_gradcam"] = time.perf_counter() - t0

    methods = dict(METHODS)
    note = occlusion_note(len(case.us_report_sentences), len(case.path_report_sentences))
    if note is not None:
        methods["reports_limit"] = note
    if us_images is not None and not do_gradcam and len(us_images):
        methods["us_overlays"] = "not computed: the bundle's ultrasound encoder is not EfficientNet-Lite0"
    timings["total"] = sum(timings.values())
    return Explanation(
        patient_id=case.patient_id,
        present={m: bool(present[i]) for i, m in enumerate(MODALITIES)},
        full_log_risk=float(full),
        reference_log_risk=float(reference),
        shapley=shapley,
        shapley_share=share,
        attention_share=attention_share,
        counterfactual=counterfactual,
        clinical=clinical,
        clinical_baseline=clinical_baseline,
        tiles=tiles,
        # the effects cover each report's first MAX_OCCLUDED_SENTENCES sentences; methods['reports_limit'] says so
        us_report=[
            SentenceAttribution(str(s), float(a)) for s, a in zip(case.us_report_sentences, us_effect, strict=False)
        ],
        path_report=[
            SentenceAttribution(str(s), float(a)) for s, a in zip(case.path_report_sentences, path_effect, strict=False)
        ],
        us_overlays=overlays,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        attention_to_compensation=on_compensation,
        methods=methods,
        completeness_error=completeness,
    )
