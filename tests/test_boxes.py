"""Shared 2D box arithmetic."""
import numpy as np

from trackssm_lib.boxes import center_distance, iou_matrix, paired_iou, xywh_to_xyxy


def test_iou_values_and_consistency():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 5]], float)  # last: no area
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]], float)
    np.testing.assert_allclose(paired_iou(a, b), [1.0, 50 / 150, 0.0])
    np.testing.assert_allclose(np.diag(iou_matrix(a, b)), paired_iou(a, b))
    assert iou_matrix(a, np.zeros((0, 4))).shape == (3, 0)
    np.testing.assert_allclose(center_distance(a[:2], b[:2]), [0.0, 5.0])
    np.testing.assert_allclose(xywh_to_xyxy([[1, 2, 3, 4]]), [[1, 2, 4, 6]])
