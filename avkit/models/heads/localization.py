"""``localization``: where in the picture is the sound? (Senocak et al. 2018, with LVS and EZ-VSL options)

    image tower ─▶ feature_map (B, C, h, w) ─▶ 1x1 conv ─▶ V (B, D, h, w)
    audio tower ─▶ pooled (B, C') ─▶ linear ─▶ a (B, D), unit norm
    S_ij = cos(a_j, V_i[:, y, x])                          (B_img, B_aud, h, w): every scene with every sound
    α_ij = softmax_yx(ReLU(S_ij) / τ_att)                  (or a normalised sigmoid(S_ij / τ_att))
    z_ij = Σ_yx α_ij · V_i                                 the scene seen through the sound's attention
    infonce: CE over s_ij = cos(z_ij, a_j) / T, both ways  (Senocak's soft pooling, batch negatives)
    triplet: softmax(‖a_i − ẑ_ii‖, ‖a_i − ẑ_ki‖) vs (0, 1), k another scene (Senocak's distance ratio)
    mil:     CE over max_yx S_ij / T, both ways            (EZ-VSL's multiple-instance max pooling)
    box:     −Σ ĝ · log α_ii on items with boxes           (semi-supervised; ĝ = the box's cell coverage, sum 1)
    presence: CE over c_ij / T, both ways                  (c_ij = mean of the top 25% of S_ij: SLAVC's confidence)
    flip:    |S_ii − flip(S_ii of the flipped scene)|, per pixel  (flip equivariance, as SEAM's; kills offsets)

The heat map of a scene and a sound is ``S`` (cosine, before attention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.evaluation.localization import (
    RULES,
    MapGrid,
    cell_coverage,
    confidence,
    ground_truth,
    score_maps,
    success_and_auc,
    upsample,
)
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, borrow, register_head
from avkit.models.projections import PROJECTIONS

LOSSES = ("infonce", "triplet", "mil")
ATTENTIONS = ("softmax", "sigmoid")
MAX_LOG_SCALE = math.log(100.0)  # the temperature stays >= 0.01, as CLIP's


def _default_towers(context: HeadContext) -> tuple[str, ...]:
    """``(audio, image)``: the first tower whose encoder takes images, and the first other tower."""
    image = next((t for t, info in context.towers.items() if info.feature_info and info.feature_info.input == "image"), None)
    other = next((t for t in context.towers if t != image), None)
    return tuple(t for t in (other, image) if t is not None)


@register_head("localization")
class LocalizationHead(Head):
    """Attention over an image tower's map, scored by an audio tower's embedding.

    Loss terms: the unsupervised ``loss`` (``infonce``, ``triplet`` or ``mil``); ``tv`` when
    ``total_variation`` is on; ``presence`` and ``flip`` when ``presence`` and ``flip_equivariance``
    are; ``box`` when ``box_supervision`` is on (items without boxes add
    nothing to it; weigh it, the paper's λ, with ``[loss_weights.localization] box``). An encoder with intermediate
    supervision (``image_hourglass``) has every term but ``flip`` (the final map only) averaged over its supervised maps.
    Validation scores cIoU under each binarisation rule; ``score`` is the adaptive rule's AUC.

    Args:
        towers: ``[audio, image]`` (default: the first tower with an image encoder, and the
            first other one); the image tower's encoder must give a 2-D map.
        attention: ``softmax`` (the paper's) or ``sigmoid``. attention_temperature: τ_att.
        loss: ``infonce``, ``triplet`` or ``mil``. temperature: the initial (learnable) T.
        hard_negatives: LVS's tri-map: every pair is scored by its mean cosine over the soft
            region ``sigmoid((S − eps_positive) / 0.03)``, and the scene's own background,
            ``1 − sigmoid((S − eps_negative) / 0.03)``, is one more negative of its row.
        box_supervision: add the ``box`` term.
        smooth: the heat map averages each cell with its ``smooth x smooth`` neighbours
            (the heat map, so evaluation and the ``flip`` term; 1: off).
        top_k: ``mil`` pools the mean of the top k cells (1: EZ-VSL's max).
        total_variation: add ``tv``, the mean absolute difference of neighbouring cells of
            each scene's map with its own sound (a smoothness prior; weigh it in ``loss_weights``).
        presence: add ``presence``, contrastive over SLAVC's confidence of every pair (the mean of
            its map's top 25% cells): a scene's confidence with its own sound should beat its
            confidence with the batch's other sounds, which are mostly of digits it does not show.
        flip_equivariance: add ``flip``: each scene, flipped left-right or upside down (one or the
            other each step), is encoded again, and its own heat map, flipped back, must equal the
            scene's (the mean absolute difference over the image's pixels). Contrastive pooling
            lets a sound's map peak anywhere its object is in view, for instance beside a thin
            "1"; a map that must flip with the image has no side to lean to. The second pass
            runs in training mode: BatchNorm normalises it with the flipped batch's own statistics
            and counts it in its running statistics. Flipped digits are not digits (an upside-down 6 is a
            mirrored 9): the term also asks the encoder to answer a sound on mirror images.
    """

    def __init__(
        self,
        context: HeadContext,
        towers: Sequence[str] | None = None,
        attention: str = "softmax",
        attention_temperature: float = 0.1,
        loss: str = "infonce",
        temperature: float = 0.07,
        hard_negatives: bool = False,
        eps_positive: float = 0.65,
        eps_negative: float = 0.4,
        box_supervision: bool = False,
        smooth: int = 1,
        top_k: int = 1,
        total_variation: bool = False,
        presence: bool = False,
        flip_equivariance: bool = False,
    ) -> None:
        super().__init__()
        towers = tuple(towers) if towers is not None else _default_towers(context)
        if len(towers) != 2 or towers[0] == towers[1]:
            raise ConfigError(f"localization needs [audio tower, image tower], got {list(towers)}")
        context.require(*towers)
        inputs = {t: (context.towers[t].feature_info.input if context.towers[t].feature_info else None) for t in towers}
        if inputs[towers[1]] != "image" or inputs[towers[0]] == "image":
            raise ConfigError(f"localization: towers = [audio tower, image tower], the second with an image encoder; "
                              f"got {list(towers)}, whose encoders take {[inputs[t] for t in towers]}")  # fmt: skip
        if loss not in LOSSES or attention not in ATTENTIONS:
            raise ConfigError(f"localization: loss must be one of {list(LOSSES)} and attention one of "
                              f"{list(ATTENTIONS)}; got {loss!r}, {attention!r}")  # fmt: skip
        if top_k < 1 or (top_k > 1 and loss != "mil"):
            raise ConfigError(f"localization: top_k (>= 1) pools the 'mil' loss only; got {top_k} with loss {loss!r}")
        if hard_negatives and loss == "triplet":
            raise ConfigError("localization: hard_negatives adds a column to the contrastive logits; "
                              "use it with loss 'infonce' or 'mil', not 'triplet'")  # fmt: skip
        if smooth < 1 or smooth % 2 == 0:
            raise ConfigError(f"localization: smooth must be an odd kernel size >= 1, got {smooth}")
        if not 0 < attention_temperature <= 1 or eps_negative > eps_positive:
            raise ConfigError("localization: attention_temperature in (0, 1] and eps_negative <= eps_positive; "
                              f"got {attention_temperature}, {eps_negative}, {eps_positive}")  # fmt: skip
        self.towers = towers
        self.audio_tower, self.image_tower = towers
        info = context.towers[self.image_tower].feature_info
        try:
            fmap = info.map() if info is not None else None
        except KeyError:
            fmap = None
        if fmap is None or len(fmap.stride) != 2:
            raise ConfigError(f"localization reads the spatial map of tower {self.image_tower!r}, but its encoder "
                              f"gives no 2-D feature map (it needs an image encoder such as image_resnet)")  # fmt: skip
        self.supervised_maps = ("map", *info.deep_supervision)
        self.grid = MapGrid.of(fmap)  # where the map's cells sit on the image
        self.audio_projection = PROJECTIONS.create("linear", in_dim=context.pooled_dim(self.audio_tower),
                                                   embed_dim=context.embed_dim)  # fmt: skip
        self.visual_projection = nn.Conv2d(fmap.channels, context.embed_dim, 1)
        self.attention, self.attention_temperature = attention, attention_temperature
        self.loss_name, self.hard_negatives = loss, hard_negatives
        self.eps_positive, self.eps_negative = eps_positive, eps_negative
        if not 0 < temperature <= 1:
            raise ConfigError(f"localization: temperature must be in (0, 1], got {temperature}")
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))  # clamped to [0, ln 100]
        self.box_supervision = box_supervision
        self.smooth, self.top_k = smooth, top_k
        self.total_variation, self.presence = total_variation, presence
        self.flip_equivariance = flip_equivariance
        self._image_encoder = borrow(context.towers[self.image_tower].encoder) if flip_equivariance else None
        self.loss_terms = (loss, *(["box"] if box_supervision else []), *(["tv"] if total_variation else []),
                           *(["presence"] if presence else []), *(["flip"] if flip_equivariance else []))  # fmt: skip

    # -- maps ----------------------------------------------------------------------------------
    def audio_embedding(self, output: EncoderOutput) -> Tensor:
        """``(B, D)`` unit-norm audio vectors."""
        return self.audio_projection(output.pooled)

    def visual_map(self, fmap: Tensor) -> Tensor:
        """``(B, C, h, w)`` encoder map -> ``(B, D, h, w)`` projected features (not normalised)."""
        return self.visual_projection(fmap)

    def heat_map(self, visual: Tensor, audio: Tensor) -> Tensor:
        """Cosine maps ``(B, h, w)`` of scene ``i`` (``visual (B, D, h, w)``) and sound ``i`` (``audio (B, D)``)."""
        return self._smoothed(torch.einsum("bdhw,bd->bhw", F.normalize(visual, dim=1), audio))

    def own_heat_maps(self, outputs: Mapping[str, EncoderOutput]) -> Tensor:
        """``(B, h, w)`` heat maps of each scene with its own sound, from the towers' outputs."""
        return self.heat_map(self.visual_map(outputs[self.image_tower].feature_map),
                             self.audio_embedding(outputs[self.audio_tower]))  # fmt: skip

    def _smoothed(self, cos: Tensor) -> Tensor:
        """``(..., h, w)`` scores averaged over ``smooth x smooth`` neighbourhoods (inside the map)."""
        if self.smooth == 1:
            return cos
        k = self.smooth
        out = F.avg_pool2d(cos.reshape(-1, 1, *cos.shape[-2:]), k, 1, k // 2, count_include_pad=False)
        return out.view_as(cos)

    def _attend(self, cos: Tensor) -> Tensor:
        """Attention over the last axis (the map's cells) of cosine scores."""
        if self.attention == "softmax":
            return torch.softmax(cos.clamp(min=0) / self.attention_temperature, dim=-1)
        weights = torch.sigmoid(cos / self.attention_temperature)
        return weights / weights.sum(-1, keepdim=True).clamp_min(1e-6)

    # -- training ------------------------------------------------------------------------------
    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        audio = self.audio_embedding(outputs[self.audio_tower])
        image = outputs[self.image_tower]
        maps = [image.feature_map] + [image.intermediates[name] for name in self.supervised_maps[1:]]
        terms: dict[str, list[Tensor]] = {name: [] for name in self.loss_terms}
        for fmap in maps:
            for name, value in self._terms(self.visual_map(fmap), audio, batch).items():
                terms[name].append(value)
        if self.flip_equivariance:  # the final map only: the flipped scene goes through the encoder again
            terms["flip"] = [self._flip_term(batch.inputs[self.image_tower], self.visual_map(image.feature_map), audio)]
        return {name: torch.stack(values).mean() for name, values in terms.items()}

    def _flip_term(self, x: Tensor, visual: Tensor, audio: Tensor) -> Tensor:
        """Mean ``|S − flip(S')|`` over the pixels of ``x (B, 3, H, W)``: ``S`` each scene's own heat map,
        ``S'`` that of the scene flipped along a random axis (left-right or upside down), both upsampled
        on the map's grid (the flip of a cell grid is not the grid, so they are compared as pixels)."""
        dim = -1 if torch.rand(()) < 0.5 else -2  # the training seed chooses: resume replays it
        size = tuple(x.shape[-2:])
        flipped = self.visual_map(self._image_encoder(x.flip(dim)).feature_map)
        heat = upsample(self.heat_map(visual, audio), size, self.grid)  # (B, H, W)
        heat_flipped = upsample(self.heat_map(flipped, audio), size, self.grid).flip(dim)
        return (heat - heat_flipped).abs().mean()

    def _terms(self, visual: Tensor, audio: Tensor, batch: Batch) -> dict[str, Tensor]:
        b, _, h, w = visual.shape
        cos = torch.einsum("idn,jd->ijn", F.normalize(visual, dim=1).flatten(2), audio)  # (B_img, B_aud, hw)
        own = cos.diagonal().T  # (B, hw): each scene with its own sound
        terms: dict[str, Tensor] = {}
        if self.loss_name == "triplet":
            terms["triplet"] = self._triplet(cos, visual, audio)
        else:
            terms[self.loss_name] = self._contrastive(self._pair_scores(cos, visual, audio), own)
        if self.box_supervision:
            terms["box"] = self._box_term(self._attend(own), batch, (h, w))
        if self.total_variation:  # neighbouring cells of a scene's own map should agree
            m = own.view(b, h, w)
            terms["tv"] = (m[:, 1:] - m[:, :-1]).abs().mean() + (m[:, :, 1:] - m[:, :, :-1]).abs().mean()
        if self.presence:  # SLAVC's confidence of every pair (the protocol's), contrasted as the pooled scores are
            pair_confidence = confidence(cos.reshape(b * b, h * w)).view(b, b)  # (B_img, B_aud)
            terms["presence"] = self._both_ways(pair_confidence, pair_confidence.T)
        return terms

    def _pair_scores(self, cos: Tensor, visual: Tensor, audio: Tensor) -> Tensor:
        """``(B_img, B_aud)`` similarity of every scene with every sound, pooled over the map's cells."""
        if self.hard_negatives:  # LVS: the mean cosine over the soft positive region of each pair
            positive = torch.sigmoid((cos - self.eps_positive) / 0.03)
            return (positive * cos).sum(-1) / (positive.sum(-1) + 1e-12)
        if self.loss_name == "mil":
            return cos.amax(-1) if self.top_k == 1 else cos.topk(min(self.top_k, cos.shape[-1]), dim=-1).values.mean(-1)
        z = F.normalize(torch.einsum("ijn,idn->ijd", self._attend(cos), visual.flatten(2)), dim=-1)  # (B_img, B_aud, D)
        return (z * audio[None]).sum(-1)

    def _contrastive(self, scores: Tensor, own: Tensor) -> Tensor:
        """Cross-entropy both ways over ``scores / T``; with hard negatives, each scene's own background
        (LVS: ``1 − sigmoid((S − eps_negative) / 0.03)``, its mean cosine) is one more negative of its row."""
        rows = scores
        if self.hard_negatives:
            background = 1 - torch.sigmoid((own - self.eps_negative) / 0.03)
            rows = torch.cat([scores, ((background * own).sum(-1) / (background.sum(-1) + 1e-12))[:, None]], dim=1)
        return self._both_ways(rows, scores.T)

    def _both_ways(self, rows: Tensor, columns: Tensor) -> Tensor:
        """Mean cross-entropy of ``rows`` (scenes, sounds [+ extra negatives]) and ``columns`` (sounds, scenes)
        scaled by ``1 / T``, the diagonal the target of each."""
        scale = self.logit_scale.clamp(0, MAX_LOG_SCALE).exp()
        target = torch.arange(len(rows), device=rows.device)
        return (F.cross_entropy(scale * rows, target) + F.cross_entropy(scale * columns, target)) / 2

    def _triplet(self, cos: Tensor, visual: Tensor, audio: Tensor) -> Tensor:
        """Senocak's distance ratio, the sound as anchor: ``softmax(‖a_i − ẑ_ii‖, ‖a_i − ẑ_ki‖)`` against
        ``(0, 1)``, where ``ẑ_ki`` is another scene ``k`` seen through sound ``i``'s attention."""
        b = len(audio)
        if b < 2:  # no other scene to be the negative
            return audio.sum() * 0.0
        idx = torch.arange(b, device=audio.device)
        other = idx.roll(-1)  # scene k = i + 1
        flat = visual.flatten(2)  # (B, D, hw)
        z_pos = F.normalize(torch.einsum("bn,bdn->bd", self._attend(cos[idx, idx]), flat), dim=-1)
        z_neg = F.normalize(torch.einsum("bn,bdn->bd", self._attend(cos[other, idx]), flat[other]), dim=-1)
        near, far = (audio - z_pos).norm(dim=-1), (audio - z_neg).norm(dim=-1)
        p_near = torch.softmax(torch.stack([near, far], -1), -1)[:, 0]
        return (2 * p_near**2).mean()  # (p+ − 0)² + (p− − 1)², p− = 1 − p+

    def _box_term(self, attention: Tensor, batch: Batch, size: tuple[int, int]) -> Tensor:
        """``−Σ ĝ · log α``, ``ĝ`` the box mask's coverage of each cell normalised to sum 1; averaged
        over the items that have boxes (zero, with gradient, if none do)."""
        boxes = batch.boxes.get(self.image_tower) or [None] * len(attention)
        image_size = tuple(batch.inputs[self.image_tower].shape[-2:])
        losses = []
        for i, item_boxes in enumerate(boxes):
            if item_boxes is None or len(item_boxes) == 0:
                continue
            g = ground_truth(item_boxes.cpu(), image_size)  # (H, W) at the input's pixels
            g = cell_coverage(g, size, self.grid).flatten().to(attention.device)  # coverage of each cell's window
            if g.sum() <= 0:
                continue
            losses.append(-(g / g.sum() * attention[i].clamp_min(1e-8).log()).sum())
        return torch.stack(losses).mean() if losses else attention.sum() * 0.0

    def logs(self) -> dict[str, float]:
        return {"temperature": float(1 / self.logit_scale.detach().clamp(0, MAX_LOG_SCALE).exp())}

    def evaluator(self) -> LocalizationEvaluator:
        return LocalizationEvaluator(self)


class LocalizationEvaluator:
    """cIoU of every validation scene with its own sound, under each rule.

    Metrics: ``{rule}/success@0.5`` and ``{rule}/AUC`` for ``median``, ``adaptive``, ``absolute``;
    ``scenes`` scored and ``no_boxes`` skipped; ``score`` = ``adaptive/AUC``.
    """

    def __init__(self, head: LocalizationHead) -> None:
        self.head = head
        self.cious: dict[str, list[float]] = {rule: [] for rule in RULES}
        self.no_boxes = 0

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        head = self.head
        raw = head.own_heat_maps(outputs).float().cpu()
        size = tuple(batch.inputs[head.image_tower].shape[-2:])
        boxes = batch.boxes.get(head.image_tower) or [None] * len(batch)
        gts = {i: ground_truth(b.cpu(), size) for i, b in enumerate(boxes) if b is not None and len(b) > 0}
        gts = {i: g for i, g in gts.items() if g.sum() > 0}  # a box the crop shrank below one pixel centre: none
        self.no_boxes += len(batch) - len(gts)
        if gts:
            scores = score_maps(raw[list(gts)], list(gts.values()), grid=head.grid)
            for rule, values in scores.items():
                self.cious[rule].extend(values.tolist())

    def compute(self) -> dict[str, float]:
        if not self.cious["adaptive"]:
            raise ConfigError(f"localization: none of the {self.no_boxes} evaluated scenes has a box, so nothing "
                              "can be scored; the validation split needs boxes to choose checkpoints")  # fmt: skip
        out: dict[str, float] = {}
        for rule, values in self.cious.items():
            out[f"{rule}/success@0.5"], out[f"{rule}/AUC"] = success_and_auc(values)
        out["scenes"], out["no_boxes"] = float(len(self.cious["adaptive"])), float(self.no_boxes)
        out["score"] = out["adaptive/AUC"]
        return out
