"""Golden values of the localization protocol (avkit.evaluation.localization), on hand-made maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avkit.evaluation.localization import (
    THRESHOLDS,
    MapGrid,
    binarize,
    cell_coverage,
    ciou,
    confidence,
    ground_truth,
    negative_aware,
    normalize_map,
    peak_inside,
    score_maps,
    success_and_auc,
    upsample,
)


def test_box_pixels_are_those_whose_centre_lies_inside_end_exclusive():
    g = ground_truth([[1, 1, 3, 3]], (4, 4))
    assert g.tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    g = ground_truth([[0.4, 0, 1.6, 1]], (2, 3))  # centres 0.5 and 1.5 inside, 2.5 not
    assert g.tolist() == [[1, 1, 0], [0, 0, 0]]


def test_several_annotators_follow_the_flickr_consensus_rule():
    boxes = [[0, 0, 2, 1], [1, 0, 3, 1], [1, 0, 2, 1]]  # pixel 1 in three boxes, 0 and 2 in one
    assert ground_truth(boxes, (1, 4), consensus=2).tolist() == [[0.5, 1.0, 0.5, 0.0]]
    assert ground_truth(boxes, (1, 4), consensus=1).tolist() == [[1.0, 1.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="consensus"):
        ground_truth(boxes, (1, 4), consensus=0)


def test_ciou_exact_empty_whole_image_and_fractional_ground_truth():
    g = ground_truth([[1, 1, 3, 3]], (4, 4))
    assert ciou(g > 0, g) == 1.0
    assert ciou(torch.zeros(4, 4, dtype=torch.bool), g) == 0.0  # empty prediction
    assert ciou(torch.ones(4, 4, dtype=torch.bool), g) == pytest.approx(4 / 16)  # whole image: the box's area fraction
    g2 = ground_truth([[0, 0, 2, 1], [1, 0, 3, 1]], (1, 4), consensus=2)  # [.5, 1, .5, 0]
    pred = torch.tensor([[True, True, False, True]])
    assert ciou(pred, g2) == pytest.approx(1.5 / (2.0 + 1.0))
    with pytest.raises(ValueError, match="empty"):
        ciou(pred, torch.zeros(1, 4))


def test_median_rule_keeps_the_top_half_and_a_flat_map_predicts_everything():
    heat = torch.arange(16.0).view(4, 4) / 15
    assert int(binarize(heat, "median").sum()) == 8
    assert binarize(heat, "median")[2:].all() and not binarize(heat, "median")[:2].any()
    flat = normalize_map(torch.full((4, 4), 3.0))
    assert flat.eq(0).all()
    assert binarize(flat, "median").all() and binarize(flat, "adaptive", torch.ones(4, 4)).all()
    assert not binarize(flat, "absolute").any()


def test_adaptive_rule_keeps_the_top_k_with_k_the_ground_truth_area_and_ties_at_the_threshold():
    g = ground_truth([[0, 0, 3, 1]], (4, 4))  # K = 3
    heat = torch.arange(16.0).view(4, 4) / 15
    assert binarize(heat, "adaptive", g).flatten().nonzero().flatten().tolist() == [13, 14, 15]
    tied = torch.zeros(4, 4)
    tied[0, :] = 1.0  # four pixels share the 3rd largest value: all four are kept (>=)
    assert int(binarize(tied, "adaptive", g).sum()) == 4
    assert not binarize(heat, "adaptive", torch.zeros(4, 4)).any()
    with pytest.raises(ValueError, match="ground truth"):
        binarize(heat, "adaptive")


def test_absolute_rule_keeps_a_pixel_exactly_at_one_half():
    heat = torch.tensor([[0.0, 0.4999, 0.5, 1.0]])
    assert binarize(heat, "absolute").tolist() == [[False, False, True, True]]
    with pytest.raises(ValueError, match="unknown binarisation rule"):
        binarize(heat, "otsu")


def test_the_median_rule_caps_a_small_objects_ciou_at_twice_its_area_fraction():
    g = ground_truth([[0, 0, 10, 1]], (10, 10))  # 10% of the image
    perfect = normalize_map(g + 0.01 * torch.rand(10, 10))
    assert ciou(binarize(perfect, "median"), g) == pytest.approx(0.2)
    assert ciou(binarize(perfect, "adaptive", g), g) == pytest.approx(1.0)


def test_success_counts_ciou_at_the_threshold_and_auc_is_the_21_point_trapezoid():
    assert len(THRESHOLDS) == 21 and THRESHOLDS[1] == 0.05
    success, _ = success_and_auc([0.5, 0.4999, 1.0, 0.0])
    assert success == 0.5
    assert success_and_auc([1.0])[1] == pytest.approx(1.0)
    assert success_and_auc([0.0])[1] == pytest.approx(0.025)  # success@0 = 1, then 0
    assert success_and_auc([0.5])[1] == pytest.approx(0.525)  # 1 up to 0.5, a half segment to 0.55
    assert all(math.isnan(v) for v in success_and_auc([]))


def test_negative_aware_ap_and_max_f1():
    conf = [0.9, 0.8, 0.7, 0.6]
    positive = [True, False, True, True]
    cious = [0.6, float("nan"), 0.3, 0.7]  # hits: 1st and 4th; the 2nd is a negative, the 3rd missed
    scores = negative_aware(conf, cious, positive)
    assert scores["AP"] == pytest.approx((1 + 0.5) / 3)
    assert scores["max_F1"] == pytest.approx(4 / 7)
    assert negative_aware([0.1, 0.9], [1.0, float("nan")], [True, False])["AP"] == pytest.approx(0.5)


def test_tied_confidences_count_together_whatever_their_order():
    # an audio-free map gives a positive and its negative the same confidence
    first = negative_aware([0.5, 0.5, 0.3, 0.3], [0.9, float("nan"), 0.9, float("nan")], [True, False, True, False])
    last = negative_aware([0.5, 0.5, 0.3, 0.3], [float("nan"), 0.9, float("nan"), 0.9], [False, True, False, True])
    assert first == last
    assert first["AP"] == pytest.approx(0.5)  # recall 1/2 at precision 1/2, then 1 at 1/2
    assert first["max_F1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert math.isnan(negative_aware([0.5], [float("nan")], [False])["AP"])


def test_confidence_is_the_mean_of_the_top_quarter_of_the_raw_map():
    raw = torch.arange(16.0).view(1, 4, 4)
    assert confidence(raw).tolist() == [13.5]
    assert confidence(torch.tensor([[[1.0, 5.0, 3.0]]])).tolist() == [5.0]  # ceil(3 / 4) = 1 cell


def test_upsampling_is_bilinear_with_half_pixel_centres():
    up = upsample(torch.tensor([[0.0, 1.0], [2.0, 3.0]]), (4, 4))
    assert up[0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])
    assert upsample(torch.zeros(3, 2, 2), (4, 6)).shape == (3, 4, 6)


def test_a_grid_places_cells_where_the_encoder_centres_them():
    tiling = MapGrid.tiling((2, 2), (4, 4))
    assert tiling == MapGrid((2.0, 2.0), (1.0, 1.0))
    raw = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert torch.equal(upsample(raw, (4, 4), tiling), upsample(raw, (4, 4)))  # tiling is align_corners=False
    # cell i centred on pixel 2i (centre 0.5): pixel 0 is cell 0, pixel 2 is cell 1, pixel 1 halfway
    shifted = upsample(raw, (4, 4), MapGrid((2.0, 2.0), (0.5, 0.5)))
    assert shifted[0].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])  # clamped at the border
    assert shifted[:, 0].tolist() == pytest.approx([0.0, 1.0, 2.0, 2.0])
    rnd = torch.randn(2, 13, 7)  # sizes that do not divide evenly
    assert torch.allclose(upsample(rnd, (100, 50), MapGrid.tiling((13, 7), (100, 50))), upsample(rnd, (100, 50)), atol=1e-5)


def test_cell_coverage_is_the_box_share_of_each_cells_window():
    gt = ground_truth([[0, 0, 4, 4]], (8, 8))
    assert cell_coverage(gt, (2, 2)).tolist() == [[1.0, 0.0], [0.0, 0.0]]  # tiling: adaptive average pooling
    assert torch.allclose(cell_coverage(gt, (4, 4)), torch.nn.functional.adaptive_avg_pool2d(gt[None, None], 4)[0, 0])
    # cell i centred on pixel 4i (centre 0.5): windows [-1.5, 2.5) and [2.5, 6.5); the box covers 2.5 and 1.5 of 4
    cover = cell_coverage(gt, (2, 2), MapGrid((4.0, 4.0), (0.5, 0.5)))
    assert cover.flatten().tolist() == pytest.approx([(2.5 / 4) ** 2, 2.5 / 4 * 1.5 / 4, 1.5 / 4 * 2.5 / 4, (1.5 / 4) ** 2])


def test_score_maps_and_peak_inside_on_a_two_object_scene():
    gt = ground_truth([[0, 0, 4, 4]], (8, 8))
    raw = torch.zeros(1, 2, 2)
    raw[0, 0, 0] = 1.0  # the top-left cell: on the object
    scores = score_maps(raw, [gt])
    assert set(scores) == {"median", "adaptive", "absolute"}
    assert scores["adaptive"][0] > 0.5 and np.isfinite(scores["median"][0])
    assert peak_inside(raw[0], torch.tensor([[0.0, 0.0, 4.0, 4.0]]), (8, 8))
    assert not peak_inside(raw[0], torch.tensor([[4.0, 4.0, 8.0, 8.0]]), (8, 8))
