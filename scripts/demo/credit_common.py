"""Shared preparation of the credit demo data: the split and the encoding Warden uses at serving time.

Warden feeds a model the manifest's non-sensitive features in manifest order, as float32:
numbers as-is, booleans as 0/1, categories as their index in the manifest's `categories` list,
missing values as NaN. This module applies exactly that encoding so training matches serving.
"""
import csv
import os

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "data", "credit_data.csv")
SEED = 20261128

# (name, type, extra) in manifest order; sensitive ones are recorded, never fed to the model.
FEATURES = [
    ("Seniority", "integer", dict(min=0, max=60, description="Years with the current employer")),
    ("Home", "category", dict(categories=["rent", "owner", "parents", "priv", "ignore", "other"], nullable=True,
                              description="Housing situation")),
    ("Time", "integer", dict(min=1, max=120, description="Requested loan term in months")),
    ("Age", "integer", dict(min=18, max=100, sensitive=True, description="Age of the applicant in years")),
    ("Marital", "category", dict(categories=["single", "married", "widow", "separated", "divorced"], nullable=True,
                                 sensitive=True, description="Marital status")),
    ("Records", "boolean", dict(description="Has previous arrears records")),
    ("Job", "category", dict(categories=["fixed", "freelance", "partime", "others"], nullable=True,
                             description="Type of employment")),
    ("Expenses", "number", dict(min=0, max=1000, description="Monthly expenses (thousands of pesetas)")),
    ("Income", "number", dict(min=0, max=10000, nullable=True, description="Monthly income (thousands of pesetas)")),
    ("Assets", "number", dict(min=0, max=1000000, nullable=True, description="Value of assets (thousands of pesetas)")),
    ("Debt", "number", dict(min=0, max=1000000, nullable=True, description="Outstanding debt (thousands of pesetas)")),
    ("Amount", "number", dict(min=0, max=100000, description="Requested loan amount (thousands of pesetas)")),
    ("Price", "number", dict(min=0, max=200000, description="Price of the goods (thousands of pesetas)")),
]
MODEL_FEATURES = [f for f in FEATURES if not f[2].get("sensitive")]
LABELS = ["good", "bad"]  # class 0, class 1; the model scores P(bad)


def read_rows():
    with open(DATA, newline="") as fh:
        return list(csv.DictReader(fh))


def split(rows):
    """Deterministic 80/20 split; returns (train_rows, holdout_rows)."""
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(rows))
    cut = int(round(len(rows) * 0.8))
    train = [rows[i] for i in sorted(order[:cut])]
    holdout = [rows[i] for i in sorted(order[cut:])]
    return train, holdout


def encode_value(raw, ftype, extra):
    if raw == "NA" or raw == "" or raw is None:
        return np.nan
    if ftype in ("number", "integer"):
        return float(raw)
    if ftype == "boolean":
        return 1.0 if raw in ("yes", "true", "1") else 0.0
    return float(extra["categories"].index(raw))


def encode(rows):
    """Rows → float32 matrix of the model features, and labels (1 = bad)."""
    x = np.array([[encode_value(r[name], t, e) for (name, t, e) in MODEL_FEATURES] for r in rows], dtype=np.float32)
    y = np.array([LABELS.index(r["Status"]) for r in rows], dtype=np.int32)
    return x, y


def sha256_file(path):
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def write_manifest(path, *, name, version, description, artifact, fmt, extra_artifact=None, threshold=0.5,
                   batching=None):
    """Write a Warden manifest (YAML) for a credit demo model; the artifact path is relative to the manifest."""
    art_abs = os.path.join(os.path.dirname(path), artifact)
    lines = [
        f"name: {name}",
        f'version: "{version}"',
        f"description: {description}",
        "owner: Credit Risk Analytics <risk-models@example.com>",
        "intended_use: >-",
        "  Demonstration credit-scoring model: estimates the probability that a consumer loan application",
        "  ends in default (Status = bad). Not for real lending decisions.",
        "risk_tier: high",
        "task: binary",
        "artifact:",
        f"  path: {artifact}",
        f"  format: {fmt}",
        f"  sha256: {sha256_file(art_abs)}",
    ]
    for k, v in (extra_artifact or {}).items():
        lines.append(f"  {k}: {v}")
    b = batching or dict(max_batch_size=64, max_queue_delay_us=0, max_queue_size=4096, timeout_ms=5000)
    lines.append("batching:")
    for k, v in b.items():
        lines.append(f"  {k}: {v}")
    lines.append("features:")
    for name_, t, e in FEATURES:
        lines.append(f"  - name: {name_}")
        lines.append(f"    type: {t}")
        for key in ("description", "min", "max", "categories", "nullable", "sensitive"):
            if key in e:
                v = e[key]
                if isinstance(v, bool):
                    v = "true" if v else "false"
                elif isinstance(v, list):
                    v = "[" + ", ".join(v) + "]"
                elif isinstance(v, str):
                    v = '"' + v + '"'
                lines.append(f"    {key}: {v}")
    lines += [
        "output:",
        "  labels: [good, bad]",
        "  positive_label: bad",
        f"  threshold: {threshold}",
        "policy: {}",
    ]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
