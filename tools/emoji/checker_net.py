"""The concept checker's network, its input preprocessing and its file format.

A small CNN (0.96 M parameters) that reads a 32x32 RGB image and scores every emoji concept.
Its weights are trained here (train_checker.py) on augmented renderings of the dataset's
sprites; saved as safetensors (F32) with config.json beside it (the concept list, the input
size, the training record).
"""
import json
import pathlib

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

INPUT = 32
WIDTHS = (32, 64, 128, 256)
DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[2] / "models" / "checker"


def _conv(cin, cout, kernel=3, stride=1):
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU()]


class Checker(nn.Module):
    """A 5x5 stride-2 stem (32x32 -> 16x16: most of the cost of a CNN is at full resolution,
    and the 2 shared cores train this one 3x faster than one with two convs at 32x32), one conv
    at 16x16, two at 8x8, one at 4x4, global average pool, linear head over the concepts."""

    def __init__(self, classes, widths=WIDTHS):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.features = nn.Sequential(*_conv(3, w0, 5, 2), *_conv(w0, w1), nn.MaxPool2d(2),
                                      *_conv(w1, w2), *_conv(w2, w2), nn.MaxPool2d(2),
                                      *_conv(w2, w3))
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(w3, classes)

    def forward(self, x):  # x: [N, 3, 32, 32] in [0, 1]
        x = self.features((x - 0.5) / 0.25)
        return self.head(self.dropout(x.mean(dim=(2, 3))))


def to_input(images):
    """PIL images (any size, any mode) -> [N, 3, 32, 32] float tensor in [0, 1]. Transparent
    pixels become white, as the dataset's clean renderings are."""
    arrays = []
    for img in images:
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, rgba)
        img = img.convert("RGB").resize((INPUT, INPUT), Image.BILINEAR, reducing_gap=None)
        arrays.append(np.asarray(img, dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def save(model, config, directory):
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    save_file(tensors, str(directory / "checker.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1) + "\n")


def load(directory=DEFAULT_DIR):
    """(model in eval mode, config) from a directory written by save()."""
    directory = pathlib.Path(directory)
    config = json.loads((directory / "config.json").read_text())
    model = Checker(len(config["concepts"]), tuple(config["widths"]))
    model.load_state_dict(load_file(str(directory / "checker.safetensors")), strict=False)
    model.eval()
    return model, config


@torch.no_grad()
def top_k(model, batch, k=5):
    """(indices [N, k], probabilities [N, k]) of the k best concepts per image."""
    probs = torch.softmax(model(batch), dim=1)
    p, i = probs.topk(k, dim=1)
    return i, p
