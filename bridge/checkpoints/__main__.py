"""``python -m bridge.checkpoints inspect|convert``: check a model_dir before switching to bridge.

    python -m bridge.checkpoints inspect MODEL_DIR [--json]
    python -m bridge.checkpoints convert MODEL_DIR OUT_DIR --optimizer keras-adam \\
        [--optimizer-config '{"learning_rate": 0.001}']

``inspect`` lists the checkpoint bridge would restore, its global step, every variable (shape,
dtype, what it is) and which optimizer wrote it. ``convert`` writes a new model_dir keyed for a
Keras 3 optimizer (or ``--optimizer v1``: a verified copy as written). Bad input (not a
model_dir, a corrupt index, an unknown slot layout, state that cannot be mapped) prints the
reason and exits with status 1; convert then writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys

from bridge.checkpoints._model_dir import KERAS_OPTIMIZERS, ModelDirError, convert_model_dir, inspect_model_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge.checkpoints", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="list what a model_dir holds and which optimizer wrote it")
    inspect.add_argument("model_dir", help="a model_dir, or a checkpoint prefix (model_dir/model.ckpt-100)")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    convert = commands.add_parser("convert", help="write a copy keyed for a Keras 3 optimizer")
    convert.add_argument("model_dir")
    convert.add_argument("out_dir", help="a new (or empty) directory")
    convert.add_argument("--optimizer", default="keras-adam", choices=["v1", *KERAS_OPTIMIZERS])
    convert.add_argument(
        "--optimizer-config", default="{}", type=json.loads,
        help="JSON of the Keras optimizer's arguments, as the model_fn passes them (learning_rate, beta_1, "
        "momentum, centered, ...): the learning rate is stored, and SGD's momentum scales with it",
    )  # fmt: skip
    convert.add_argument("--json", action="store_true", help="print the new model_dir's report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "inspect":
            report = inspect_model_dir(args.model_dir)
        else:
            report = convert_model_dir(args.model_dir, args.out_dir, args.optimizer, args.optimizer_config)
    except ModelDirError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report.to_json() if args.json else report.to_text())
    if report.unknown_slots:
        print(
            f"error: {report.checkpoint} holds optimizer slots of an unknown layout {report.unknown_slots}; "
            "bridge cannot continue its optimizer state.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
