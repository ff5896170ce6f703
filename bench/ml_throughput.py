"""Serving throughput: the engine vs the original per-request way vs the `detect-tumor` peer.

Measured in one run on this machine, warm (one untimed call first), real MRI bytes from the
shared data set through the whole serving path (decode, crop, resize, model):

* engine: ``InferenceEngine.load(artifact).predict_bytes`` at batch 1, 8 and 32, for VGG16 and
  ResNet50, with the float32 Keras runtime (reference) and the bfloat16 runtime; the bf16
  probabilities are compared with float32 Keras on the evaluation images (must stay within 0.01);
* original: what the first version of the app did per request: load the model file, preprocess
  one image, ``model.predict``;
* peer: the MIT-licensed PyPI package ``detect-tumor`` (VGG16 ONNX, 240x240, ONNX Runtime),
  one image per call (its API), warm session;
* resident memory of a separate process holding both models in the engine after batch-32 calls.

    .venv/bin/python bench/ml_throughput.py --vgg16 var/models/vgg16_hed [--resnet50 auto] [--threads 2]

Prints a table, the ratios, and last one JSON line.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _machine import machine_info, peak_rss_mb, rss_mb  # noqa: E402

DATA = Path("/work/shared/datasets/brain-mri-navoneel")


def image_bytes(data: Path, n: int) -> list[bytes]:
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images under {data}")
    step = max(1, len(files) // n)
    return [files[(i * step) % len(files)].read_bytes() for i in range(n)]


def ensure_artifact(spec: str, arch: str, size: int) -> tuple[str, str]:
    """Return (path, label). ``auto`` builds a random-init artifact (same compute as a trained one)."""
    if spec != "auto":
        from ml.artifacts import read_metadata

        meta = read_metadata(spec)
        return spec, (meta.get("extra") or {}).get("backbone") or meta["architecture"]
    out = ROOT / "var" / "bench" / f"{arch}_none_{size}"
    if not (out / "metadata.json").exists():
        from ml.artifacts import save_artifact
        from ml.builders import build_classifier

        save_artifact(build_classifier(arch, "none", size), out, architecture=arch, input_size=size,
                      extra={"backbone": f"{arch} random init (throughput only)"})
    return str(out), f"{arch} random init (throughput only; same compute as trained)"


def timed(fn, min_seconds: float, min_calls: int = 2) -> tuple[float, int]:
    fn()  # warm
    t0 = time.perf_counter()
    calls = 0
    while calls < min_calls or time.perf_counter() - t0 < min_seconds:
        fn()
        calls += 1
    return time.perf_counter() - t0, calls


def rss_child(args) -> int:
    from ml.engine import InferenceEngine

    eng = InferenceEngine(args.threads, 1, runtime=args.runtime)
    imgs = image_bytes(args.data, 32)
    for path in (args.vgg16, args.resnet50):
        eng.load(path).predict_bytes(imgs, batch_size=32)
    print(json.dumps({"rss_mb": round(rss_mb(), 1), "peak_rss_mb": round(peak_rss_mb(), 1),
                      "runtime": eng.runtime}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description="serving throughput benchmark")
    ap.add_argument("--vgg16", default="auto", help="VGG16 artifact dir, or auto (random init, 224)")
    ap.add_argument("--resnet50", default="auto", help="ResNet50 artifact dir, or auto (random init, 224)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--runtimes", default="keras,bf16")
    ap.add_argument("--check-images", type=int, default=64, help="evaluation images for the bf16-vs-keras check")
    ap.add_argument("--min-seconds", type=float, default=8.0, help="minimum timed seconds per measurement")
    ap.add_argument("--requests", type=int, default=3, help="original-way requests to time")
    ap.add_argument("--peer-images", type=int, default=12)
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--runtime", default="keras", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        return rss_child(args)

    info = machine_info()
    print(f"machine: {info['cores']} cores, {info['cpu']} {info['cpu_flags']}, load {info['loadavg']}", flush=True)
    from ml.tfutil import configure_threads

    configure_threads(args.threads, 1)
    import numpy as np

    from ml.engine import InferenceEngine

    batches = [int(b) for b in args.batches.split(",")]
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    arts = {"vgg16": ensure_artifact(args.vgg16, "vgg16", 224),
            "resnet50": ensure_artifact(args.resnet50, "resnet50", 224)}
    imgs = image_bytes(args.data, max(batches + [args.check_images]))
    results: dict = {"engine": {}, "bf16_check": {}}
    rows = []
    for rt in runtimes:
        eng = InferenceEngine(args.threads, 1, runtime=rt)
        for arch, (path, _label) in arts.items():
            loaded = eng.load(path)
            for b in batches:
                batch = imgs[:b]
                secs, calls = timed(functools.partial(loaded.predict_bytes, batch, batch_size=b), args.min_seconds)
                ips = b * calls / secs
                results["engine"].setdefault(rt, {}).setdefault(arch, {})[str(b)] = round(ips, 3)
                rows.append((f"engine {rt}", arch, b, ips))
                print(f"  engine {rt:5s} {arch:8s} batch {b:2d}: {ips:7.2f} images/s", flush=True)
            if rt != "keras" and "keras" in runtimes:
                ref = InferenceEngine(args.threads, 1, runtime="keras").load(path)
                check = imgs[:args.check_images]
                a = np.array([p.probability for p in ref.predict_bytes(check)])
                c = np.array([p.probability for p in loaded.predict_bytes(check)])
                thr = loaded.threshold
                results["bf16_check"][arch] = {"images": len(check), "max_abs_diff": float(np.max(np.abs(a - c))),
                                               "label_changes": int(np.sum((a >= thr) != (c >= thr)))}
                print(f"  {rt} vs keras on {len(check)} evaluation images ({arch}): max |dp| = "
                      f"{results['bf16_check'][arch]['max_abs_diff']:.4f}, label changes "
                      f"{results['bf16_check'][arch]['label_changes']}", flush=True)
            eng.unload(path)

    # The original app: per request, load the model file, preprocess one image, model.predict.
    import keras
    from PIL import Image

    from ml.layers import CUSTOM_OBJECTS

    vpath = Path(arts["vgg16"][0]) / "model.keras"
    size = json.loads((Path(arts["vgg16"][0]) / "metadata.json").read_text())["input_size"]

    def original_request(data: bytes):
        import io

        model = keras.saving.load_model(vpath, custom_objects=CUSTOM_OBJECTS, compile=False)
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size))
        x = np.asarray(img, np.float32)[None]
        p = float(model.predict(x, verbose=0)[0, 0])
        del model
        keras.backend.clear_session()
        return p

    original_request(imgs[0])
    t0 = time.perf_counter()
    for i in range(args.requests):
        original_request(imgs[i + 1])
    orig_ips = args.requests / (time.perf_counter() - t0)
    results["original_per_request_vgg16"] = round(orig_ips, 4)
    rows.append(("original per request", "vgg16", 1, orig_ips))
    print(f"  original per-request (load + predict one) vgg16: {orig_ips:.3f} images/s", flush=True)

    import onnxruntime
    from detect_tumor import TumorDetector

    det = TumorDetector()
    det.predict(imgs[0])
    t0 = time.perf_counter()
    for i in range(args.peer_images):
        det.predict(imgs[i % len(imgs)])
    peer_ips = args.peer_images / (time.perf_counter() - t0)
    results["peer_detect_tumor"] = round(peer_ips, 3)
    rows.append(("peer detect-tumor (ONNX Runtime)", "vgg16@240", 1, peer_ips))
    print(f"  peer detect-tumor 0.1.1 (VGG16 ONNX 240px, onnxruntime {onnxruntime.__version__}): "
          f"{peer_ips:.3f} images/s", flush=True)

    child = subprocess.run([sys.executable, __file__, "--rss-child", "--vgg16", arts["vgg16"][0], "--resnet50",
                            arts["resnet50"][0], "--threads", str(args.threads), "--data", str(args.data),
                            "--runtime", runtimes[-1]], capture_output=True, text=True)
    try:
        results["rss_both_models"] = json.loads(child.stdout.strip().splitlines()[-1])
    except Exception:
        results["rss_both_models"] = {"error": child.stderr[-500:]}

    best_rt = runtimes[-1]
    eng_v = results["engine"][best_rt]["vgg16"]
    best_b = max(eng_v, key=lambda k: eng_v[k])
    ratios = {"runtime": best_rt, "batch": int(best_b),
              "engine_vs_peer": round(eng_v[best_b] / peer_ips, 2),
              "engine_vs_original": round(eng_v[best_b] / orig_ips, 1),
              "engine_batch1_vs_peer": round(eng_v["1"] / peer_ips, 2) if "1" in eng_v else None}
    results["ratios_vgg16"] = ratios
    print()
    print(f"{'what':34s} {'model':10s} {'batch':>5s} {'images/s':>9s}")
    for what, arch, b, ips in rows:
        print(f"{what:34s} {arch:10s} {b:5d} {ips:9.2f}")
    print(f"VGG16 engine ({best_rt}, batch {best_b}) / peer = {ratios['engine_vs_peer']}x; / original per-request = "
          f"{ratios['engine_vs_original']}x; engine batch 1 / peer = {ratios['engine_batch1_vs_peer']}x")
    print(f"resident memory, one process holding both models after batch-32 calls: {results['rss_both_models']}")
    results.update({"bench": "ml_throughput", "models": {k: v[1] for k, v in arts.items()},
                    "threads": args.threads, "machine": info, "load_after": machine_info()["loadavg"]})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
