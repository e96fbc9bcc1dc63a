"""Train the bundled demo credit model (XGBoost, binary:logistic) and write everything Warden serves and tests.

Run with an interpreter that has xgboost and scikit-learn (Debian's: /usr/bin/python3):

    /usr/bin/python3 scripts/demo/train_credit_demo.py

Writes
- models/credit-demo/model.json       the booster (XGBoost JSON), trained on the fixed 80 % split
- models/credit-demo/manifest.yaml    its Warden manifest (sha256 of model.json included)
- models/credit-demo/holdout.csv      the other 20 %: the original rows of data/credit_data.csv, verbatim
- fixtures/xgboost/credit-demo-holdout-reference.json
                                      the holdout encoded as Warden encodes it (null = missing) and XGBoost's
                                      predictions, margins and contributions for it, to test the engine against
"""
import json
import math
import os

import numpy as np
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from credit_common import DATA, MODEL_FEATURES, ROOT, SEED, encode, read_rows, split, write_manifest

MODEL_DIR = os.path.join(ROOT, "models", "credit-demo")
REFERENCE = os.path.join(ROOT, "fixtures", "xgboost", "credit-demo-holdout-reference.json")
ROUNDS = 150
PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "max_depth": 4,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 2,
    "seed": SEED,
    "nthread": 1,  # single-threaded: the same model bytes on every run
}


def to_json(value):
    """numpy → JSON-ready lists, NaN → null."""
    if isinstance(value, np.ndarray):
        return [to_json(v) for v in value]
    value = float(value)
    return None if math.isnan(value) else value


def main():
    rows = read_rows()
    with open(DATA, newline="") as fh:
        lines = fh.read().splitlines()
    header, raw = lines[0], lines[1:]
    assert len(raw) == len(rows), "one CSV line per record expected"
    # Split (record, original line) pairs so the holdout file keeps R's quoting and NA exactly.
    train, holdout = split(list(zip(rows, raw)))
    x_train, y_train = encode([r for r, _ in train])
    x_hold, y_hold = encode([r for r, _ in holdout])

    names = [name for name, _, _ in MODEL_FEATURES]
    d_train = xgb.DMatrix(x_train, label=y_train, missing=np.nan, feature_names=names)
    d_hold = xgb.DMatrix(x_hold, label=y_hold, missing=np.nan, feature_names=names)
    booster = xgb.train(PARAMS, d_train, ROUNDS)
    predictions = booster.predict(d_hold)
    auc = roc_auc_score(y_hold, predictions)

    os.makedirs(MODEL_DIR, exist_ok=True)
    booster.save_model(os.path.join(MODEL_DIR, "model.json"))
    with open(os.path.join(MODEL_DIR, "holdout.csv"), "w", newline="") as fh:
        fh.write("\n".join([header] + [line for _, line in holdout]) + "\n")
    write_manifest(
        os.path.join(MODEL_DIR, "manifest.yaml"),
        name="credit-demo",
        version="1.0.0",
        description=f"XGBoost gradient-boosted trees ({ROUNDS} trees of depth {PARAMS['max_depth']}) scoring the "
                    f"probability of default; holdout ROC AUC {auc:.3f}",
        artifact="model.json",
        fmt="xgboost-json",
    )

    os.makedirs(os.path.dirname(REFERENCE), exist_ok=True)
    reference = {
        "objective": PARAMS["objective"],
        "num_feature": len(names),
        "num_class": 0,
        "features": names,
        "inputs": to_json(x_hold),
        "labels": y_hold.tolist(),
        "predictions": to_json(predictions),
        "margins": to_json(booster.predict(d_hold, output_margin=True)),
        "contribs": to_json(booster.predict(d_hold, pred_contribs=True)),
        "holdout_auc": auc,
        "xgboost_version": xgb.__version__,
    }
    with open(REFERENCE, "w") as fh:
        json.dump(reference, fh, separators=(",", ":"))
        fh.write("\n")

    print(f"xgboost {xgb.__version__}: {len(train)} training rows, {len(holdout)} holdout rows, {ROUNDS} trees")
    print(f"holdout ROC AUC {auc:.4f} (bad rate {y_hold.mean():.3f})")
    print(f"wrote {MODEL_DIR}/{{model.json,manifest.yaml,holdout.csv}} and {REFERENCE}")


if __name__ == "__main__":
    main()
