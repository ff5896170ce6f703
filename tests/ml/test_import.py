import subprocess
import sys


def test_import_ml_is_light():
    code = ("import ml, ml.intake, ml.engine, ml.artifacts, ml.builders, ml.prepare, ml.weights, ml.cli, ml.data, "
            "ml.metrics, ml.train, ml.cv, ml.evaluate, ml.head, ml.finetune, ml.augment, ml.plots, ml.gradcam, "
            "ml.features, sys; "
            "assert 'django' not in sys.modules; assert 'tensorflow' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
