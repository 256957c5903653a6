"""Write keras-ocr weight files from randomly initialised models, for tests and demos of
the keras engine where the real (downloaded) weights are not available.

    .venv/bin/python scripts/make_keras_test_weights.py OUT_DIR

Writes OUT_DIR/detector.h5 and OUT_DIR/recognizer.h5, loadable with
KERAS_OCR_DETECTOR_WEIGHTS / KERAS_OCR_RECOGNIZER_WEIGHTS. Untrained weights read nothing
meaningful, so two output biases are set to make the pipeline have work to do: the
detector marks the whole image as text (one region), and the recognizer never prefers the
CTC blank (it always emits characters). Everything else stays random.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def make_weights(directory: Path, *, seed: int = 7) -> tuple[Path, Path]:
    """Write detector.h5 and recognizer.h5 into `directory`; return their paths."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from keras_ocr import detection, recognition

    tf.random.set_seed(seed)
    np.random.seed(seed)
    directory.mkdir(parents=True, exist_ok=True)

    detector = detection.Detector(weights=None)
    head = detector.model.get_layer("conv_cls.8")
    kernel, bias = head.get_weights()
    # Text score 1.0 and link score 0.0 everywhere (the VGG head has no activation).
    head.set_weights([np.zeros_like(kernel), np.array([1.0, 0.0], dtype=bias.dtype)])
    detector_path = directory / "detector.h5"
    detector.model.save_weights(str(detector_path))

    recognizer = recognition.Recognizer(
        alphabet=recognition.DEFAULT_ALPHABET, weights=None, build_params=recognition.DEFAULT_BUILD_PARAMS
    )
    output = recognizer.model.get_layer("fc_12")
    kernel, bias = output.get_weights()
    bias = bias.copy()
    bias[-1] = -50.0  # the blank class is the last one
    output.set_weights([kernel, bias])
    recognizer_path = directory / "recognizer.h5"
    recognizer.model.save_weights(str(recognizer_path))
    return detector_path, recognizer_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    detector, recognizer = make_weights(args.out_dir, seed=args.seed)
    sys.stdout.write(f"KERAS_OCR_DETECTOR_WEIGHTS={detector}\nKERAS_OCR_RECOGNIZER_WEIGHTS={recognizer}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
