"""The cohorts: four real public ones (lifelines), simulated ones with known truth, and a synthetic
release of each (the project's Gaussian copula, fixed seed)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import SCHEMA_FILE

SCHEMAS = Path(__file__).resolve().parent / "schemas"

# The simulated data-generating process (known truth; the population values of the battery are
# computed on one POPULATION_ROWS-row draw with the non-private estimators).
SIM = {
    "p_treat": 0.5, "log_hr_treat": math.log(0.7), "log_hr_node": 0.06, "log_hr_grade": 0.35, "log_hr_age": 0.0,
    "p_zero_nodes": 0.6, "nodes_mean_if_positive": 5.0, "grade_probs": [0.3, 0.45, 0.25],
    "age_mean": 60.0, "age_sd": 10.0,
    # piecewise-exponential baseline: high hazard over the first EARLY_DAYS (a few % of follow-up)
    "early_days": 100.0, "hazard_early": 0.0015, "hazard_late": 0.0002,
    "admin_censor_days": [1800.0, 3650.0], "loss_rate": 0.00005,
    "logit_base": -1.0, "log_or_treat": math.log(2.0), "log_or_node": 0.05, "log_or_grade": 0.2,
}
SIM_SIZES = (500, 2_000, 10_000)
POPULATION_ROWS = 200_000


@dataclass
class Cohort:
    name: str
    frame: pd.DataFrame
    schema: Any
    simulated: bool
    source: str


def load_schema(path: Path):
    from clearinghouse.schema import Schema

    return Schema.from_dict(json.loads(path.read_text(encoding="utf-8")))


def typed(frame: pd.DataFrame, schema) -> pd.DataFrame:
    """The frame as custody stores it (CSV round trip, checked and typed against the schema)."""
    from clearinghouse.tabular import read_csv_checked

    return read_csv_checked(frame.to_csv(index=False).encode(), schema)


def _yes_no(series: pd.Series, no: str = "no", yes: str = "yes") -> pd.Series:
    return series.map({0: no, 1: yes})


def real_cohorts() -> list[Cohort]:
    from lifelines.datasets import load_gbsg2, load_kidney_transplant, load_lung, load_rossi

    out = []
    schema = load_schema(SCHEMA_FILE)
    frame = load_gbsg2()
    frame.insert(0, "pid", range(1, len(frame) + 1))
    out.append(Cohort("gbsg2", typed(frame, schema), schema, False, "lifelines.datasets.load_gbsg2"))

    raw = load_rossi()
    frame = pd.DataFrame({"week": raw["week"], "arrest": raw["arrest"], "fin": _yes_no(raw["fin"]), "age": raw["age"],
                          "race": _yes_no(raw["race"], "other", "black"), "wexp": _yes_no(raw["wexp"]),
                          "mar": _yes_no(raw["mar"]), "paro": _yes_no(raw["paro"]), "prio": raw["prio"]})
    schema = load_schema(SCHEMAS / "rossi.schema.json")
    out.append(Cohort("rossi", typed(frame, schema), schema, False, "lifelines.datasets.load_rossi"))

    raw = load_kidney_transplant()
    male = (raw["black_male"] + raw["white_male"]).astype(int)
    black = (raw["black_male"] + raw["black_female"]).astype(int)
    frame = pd.DataFrame({"time": raw["time"], "death": raw["death"], "age": raw["age"],
                          "sex": _yes_no(male, "female", "male"), "race": _yes_no(black, "white", "black")})
    schema = load_schema(SCHEMAS / "kidney_transplant.schema.json")
    out.append(Cohort("kidney_transplant", typed(frame, schema), schema, False,
                      "lifelines.datasets.load_kidney_transplant (sex and race from the one-hot columns)"))

    raw = load_lung()
    frame = pd.DataFrame({"time": raw["time"], "status": raw["status"], "age": raw["age"],
                          "sex": raw["sex"].map({1: "male", 2: "female"}), "ph_ecog": raw["ph.ecog"].astype("Int64"),
                          "ph_karno": raw["ph.karno"].astype("Int64"), "pat_karno": raw["pat.karno"].astype("Int64"),
                          "meal_cal": raw["meal.cal"], "wt_loss": raw["wt.loss"]})
    schema = load_schema(SCHEMAS / "lung.schema.json")
    out.append(Cohort("lung", typed(frame, schema), schema, False, "lifelines.datasets.load_lung (inst dropped)"))
    return out


def simulate(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows of the simulated process :data:`SIM` (raw, untyped)."""
    s = SIM
    treat = rng.random(n) < s["p_treat"]
    positive = rng.random(n) >= s["p_zero_nodes"]
    # 1 + negative binomial (mean nodes_mean_if_positive - 1, overdispersed): a long right tail
    extra = rng.negative_binomial(1.5, 1.5 / (1.5 + s["nodes_mean_if_positive"] - 1), n)
    nodes = np.where(positive, np.minimum(1 + extra, 60), 0)
    grade = rng.choice([1, 2, 3], size=n, p=s["grade_probs"])
    age = np.clip(np.round(rng.normal(s["age_mean"], s["age_sd"], n)), 18, 100).astype(int)
    lp = s["log_hr_treat"] * treat + s["log_hr_node"] * nodes + s["log_hr_grade"] * (grade - 2) + s["log_hr_age"] * age
    target = rng.exponential(1.0, n) / np.exp(lp)  # cumulative baseline hazard at the event time
    early_h = s["hazard_early"] * s["early_days"]
    event_time = np.where(target < early_h, target / s["hazard_early"],
                          s["early_days"] + (target - early_h) / s["hazard_late"])
    censor = np.minimum(rng.uniform(*s["admin_censor_days"], n), rng.exponential(1 / s["loss_rate"], n))
    time = np.ceil(np.minimum(event_time, censor))  # whole days: tied times
    event = (event_time <= censor).astype(int)
    logit = s["logit_base"] + s["log_or_treat"] * treat + s["log_or_node"] * nodes + s["log_or_grade"] * (grade - 2)
    response = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"treat": np.where(treat, "yes", "no"), "nodes": nodes, "grade": grade, "age": age,
                         "response": np.where(response, "yes", "no"), "time": np.clip(time, 1, 4000), "event": event})


def simulated_cohorts(seed: int, sizes=SIM_SIZES) -> list[Cohort]:
    schema = load_schema(SCHEMAS / "simulated.schema.json")
    return [Cohort(f"simulated_{n}", typed(simulate(n, np.random.default_rng([seed, n])), schema), schema, True,
                   "bench.trust.cohorts.simulate") for n in sizes]


def population(seed: int, rows: int = POPULATION_ROWS) -> pd.DataFrame:
    schema = load_schema(SCHEMAS / "simulated.schema.json")
    return typed(simulate(rows, np.random.default_rng([seed, 0])), schema)


def synthetic_release(cohort: Cohort, seed: int) -> pd.DataFrame:
    """A release of the cohort's size from the project's Gaussian copula (the fastest generator)."""
    from generators.core.models import make_model

    model = make_model("copula").fit(cohort.frame, cohort.schema, epochs=1, seed=seed)
    return model.sample(len(cohort.frame), seed=seed)
