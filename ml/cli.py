"""Command line: ``python -m ml {train,evaluate,cv,predict,info} ...``."""
from __future__ import annotations

import argparse
import json
import logging
import sys

__all__ = ["main"]


def _cmd_info(args) -> int:
    from .artifacts import read_metadata

    print(json.dumps(read_metadata(args.artifact), indent=2, sort_keys=True))
    return 0


def _cmd_predict(args) -> int:
    from .engine import InferenceEngine

    engine = InferenceEngine(args.threads, 1)
    loaded = engine.load(args.artifact)
    datas = []
    for p in args.images:
        with open(p, "rb") as fh:
            datas.append(fh.read())
    for path, pred in zip(args.images, loaded.predict_bytes(datas, batch_size=args.batch_size)):
        print(json.dumps({"file": path, "probability": pred.probability, "label": pred.label, "error": pred.error}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ml", description="NeuroAI brain-MRI classifier pipeline")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print and validate an artifact's metadata")
    p.add_argument("artifact")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("predict", help="classify image files with an artifact")
    p.add_argument("artifact")
    p.add_argument("images", nargs="+")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_predict)
    return ap


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        from .artifacts import ArtifactError
        from .weights import WeightsError

        if isinstance(exc, (ArtifactError, WeightsError, FileNotFoundError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
