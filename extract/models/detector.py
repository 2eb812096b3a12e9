"""Faster R-CNN object detector (torchvision) behind one small interface.

MASN takes N = 10 objects per step from a Faster R-CNN (section 3.1). We keep the top
``top_k`` boxes per frame (10 for MASN, more as trajectory candidates), class-agnostic, by score, after a class-agnostic NMS so that one
object does not fill several of the 10 slots under different labels.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from extract.geometry import pad_to_aspect
from extract.models.weights import WeightsSpec, load_state_dict

DETECTOR_WEIGHTS = {
    "fasterrcnn_resnet50_fpn_v2": WeightsSpec(
        "torchvision:FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1",
        "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": WeightsSpec(
        "torchvision:FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1",
        "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
    ),
}


@dataclass(frozen=True)
class Detections:
    """Detections of one frame, best first.

    boxes (Tensor[K, 4]): x1, y1, x2, y2 in pixels of the decoded frame.
    scores (Tensor[K]), labels (Tensor[K] int64): COCO category indices (see ``category_names``).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor


def category_names() -> list[str]:
    """COCO category names indexed by label (torchvision's list; '__background__' at 0, 'N/A' gaps)."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

    return list(FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])


class Detector(nn.Module):
    """Wraps a torchvision detection model.

    Args:
        model: a torchvision ``FasterRCNN``.
        agnostic_nms_iou: IoU above which lower-scored boxes of any class are dropped.
    """

    def __init__(self, model: nn.Module, *, agnostic_nms_iou: float, batch_size: int = 1, amp: bool = False) -> None:
        super().__init__()
        self.model = model
        self.agnostic_nms_iou = agnostic_nms_iou
        self.batch_size = batch_size
        self.amp = amp

    def _run(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        """torchvision's ``GeneralizedRCNN.forward`` (eval), with the backbone optionally in bf16
        autocast: the RPN, the box head and the box coordinates stay float32."""
        if not self.amp:
            return self.model(images)
        model = self.model
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        batch, _ = model.transform(images)
        with torch.autocast(batch.tensors.device.type, dtype=torch.bfloat16):
            features = model.backbone(batch.tensors)
        features = {name: f.float() for name, f in features.items()}
        proposals, _ = model.rpn(batch, features)
        detections, _ = model.roi_heads(features, proposals, batch.image_sizes)
        return model.transform.postprocess(detections, batch.image_sizes, original_sizes)

    def forward(self, images: list[Tensor], top_k: int) -> list[Detections]:
        """
        Args:
            images (list[Tensor[3, H_i, W_i]]): RGB in [0, 1], decoded resolution.
            top_k: boxes kept per image, best first after class-agnostic NMS.
        Returns:
            one ``Detections`` per image, at most ``top_k`` boxes each.
        """
        from torchvision.ops import clip_boxes_to_image, nms

        # torchvision pads a batch to its largest image, which changes the features near the
        # border: batching only equal sizes keeps every frame's result independent of its batch.
        # A very thin frame is padded so that the detector's resize keeps it >= 2 px wide; its
        # boxes are clipped to the frame itself below.
        inputs = [pad_to_aspect(img, self.model.transform.max_size) for img in images]
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, img in enumerate(inputs):
            by_size[tuple(img.shape[-2:])].append(i)
        raw: list[dict] = [{}] * len(images)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, out in zip(chunk, self._run([inputs[i] for i in chunk])):
                    raw[i] = out
        results = []
        for img, out in zip(images, raw):
            # Rescaling from the detector's input size can overshoot the frame by a rounding error.
            boxes = clip_boxes_to_image(out["boxes"], tuple(img.shape[-2:]))
            keep = nms(boxes, out["scores"], self.agnostic_nms_iou)[:top_k]
            results.append(Detections(boxes[keep], out["scores"][keep], out["labels"][keep]))
        return results


def build_detector(
    *,
    arch: str,
    weights: Path | None,
    min_size: int,
    max_size: int,
    score_thresh: float,
    candidates: int,
    agnostic_nms_iou: float,
    batch_size: int = 1,
    rpn_pre_nms_top_n: int | None = None,
    rpn_post_nms_top_n: int | None = None,
    amp: bool = False,
) -> Detector:
    """torchvision Faster R-CNN with COCO classes.

    Args:
        arch: a key of ``DETECTOR_WEIGHTS``.
        weights: checkpoint path, or None for random initialisation (current RNG state).
        min_size, max_size: the detector's own input resize (shorter / longer side).
        score_thresh: minimum class score kept by torchvision's postprocessing; low, so that
            real frames yield ``top_k`` boxes wherever the detector sees them.
        candidates: detections per image out of torchvision's per-class NMS.
        batch_size: equal-size frames per forward pass. A frame's boxes depend on the batch
            it is in (kernels round by batch size): the extractor hands over one video's frames
            at a time, split by a rule of the video alone, so its boxes do not depend on other videos.
        rpn_pre_nms_top_n, rpn_post_nms_top_n: RPN proposals kept per level before NMS and in
            all after it (at test time); None keeps the architecture's default.
        amp: run the backbone in bf16 autocast (see ``Detector``).
    """
    from torchvision.models import detection

    if arch not in DETECTOR_WEIGHTS:
        raise ValueError(f"detector arch must be one of {sorted(DETECTOR_WEIGHTS)}, got {arch!r}")
    model = getattr(detection, arch)(
        weights=None,
        weights_backbone=None,
        num_classes=91,
        min_size=min_size,
        max_size=max_size,
        box_score_thresh=score_thresh,
        box_detections_per_img=candidates,
        rpn_score_thresh=0.0,  # the mobilenet default (0.05) can leave a frame with no proposals
        **({"rpn_pre_nms_top_n_test": rpn_pre_nms_top_n} if rpn_pre_nms_top_n else {}),
        **({"rpn_post_nms_top_n_test": rpn_post_nms_top_n} if rpn_post_nms_top_n else {}),
    )
    if weights is not None:
        model.load_state_dict(load_state_dict(weights))
    return Detector(model.eval(), agnostic_nms_iou=agnostic_nms_iou, batch_size=batch_size, amp=amp)
