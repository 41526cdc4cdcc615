"""The CDNOW benchmark's pieces that can go wrong: the protocol's cutoffs, same rows and labels for every
model, clear errors, the --json line. A small real run: a few hundred CDNOW customers, a short horizon."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.common import CDNOW_DATA as DATA
from bench.common import MIN_HISTORY_DAYS, ProtocolError, training_cutoffs
from bench.quality.cdnow import main

pytestmark = pytest.mark.skipif(not DATA.is_file(), reason=f"CDNOW data not at {DATA}")
DAY = pd.Timedelta(days=1)
START, END = pd.Timestamp("1997-01-01", tz="UTC"), pd.Timestamp("1998-06-30", tz="UTC")


@pytest.mark.parametrize(("cutoff", "horizon", "every"), [("1997-09-30", 90, 14), ("1998-03-31", 30, 7)])
def test_training_label_windows_end_by_the_test_cutoff(cutoff: str, horizon: int, every: int):
    test = pd.Timestamp(cutoff, tz="UTC")
    cutoffs = training_cutoffs(START, END, test, horizon, every)
    assert cutoffs == sorted(cutoffs) and len(cutoffs) > 3
    assert max(cutoffs) + horizon * DAY == test, "the newest training labels end exactly at T"
    assert min(cutoffs) >= START + MIN_HISTORY_DAYS * DAY
    assert all((b - a) == every * DAY for a, b in zip(cutoffs, cutoffs[1:], strict=False))


def test_bad_cutoffs_are_clear_errors():
    with pytest.raises(ProtocolError, match=r"past the data end 1998-06-30.*on or before 1998-04-01"):
        training_cutoffs(START, END, pd.Timestamp("1998-05-01", tz="UTC"), 90, 14)
    with pytest.raises(ProtocolError, match=r"no training cutoff.*on or after 1997-04-29"):
        training_cutoffs(START, END, pd.Timestamp("1997-03-01", tz="UTC"), 90, 14)
    with pytest.raises(ProtocolError, match="at least 1 day"):
        training_cutoffs(START, END, pd.Timestamp("1997-09-30", tz="UTC"), 0, 14)


def test_bad_cutoff_on_the_command_line_exits_2_before_any_work(tmp_path, capsys):
    assert main(["--cutoff", "1998-06-01", "--work", str(tmp_path / "w")]) == 2
    assert "past the data end" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_peers_see_the_rows_and_labels_shopscore_scores(tmp_path, capsys):
    """A real run on the customers with id <= 400: the registered mlp model scores the Feast test frame,
    which `score_family` checks equals the peers' rows; here the rows are recomputed from the raw file."""
    work = tmp_path / "work"
    args = ["--cutoff", "1997-06-30", "--horizon", "30", "--families", "mlp", "--customers", "400"]
    args += ["--epochs", "2", "--train-every", "30", "--resamples", "5", "--work", str(work), "--json"]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["shopscore"]["best"] == "mlp"
    assert set(summary["peers"]) == {"BG/NBD", "logistic (RFM)", "LightGBM (RFM)", "base rate"}
    raw = pd.read_csv(DATA, sep=r"\s+")
    raw = raw[raw["customer_id"] <= 400]
    date = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d", utc=True)
    cutoff = pd.Timestamp("1997-06-30", tz="UTC")
    customers = raw.loc[date < cutoff, "customer_id"].unique()
    buyers = raw.loc[(date > cutoff) & (date <= cutoff + 30 * DAY), "customer_id"].unique()
    base_rate = np.isin(customers, buyers).mean()
    for entry in [summary["shopscore"], *summary["peers"].values()]:
        assert entry["n"] == len(customers) and entry["base_rate"] == pytest.approx(base_rate)
        lo, hi = entry["roc_auc_ci"]
        assert lo <= entry["roc_auc"] <= hi
    assert summary["peers"]["BG/NBD"]["roc_auc"] > 0.6, "BG/NBD ranks buyers above the rest"
    assert (work / "registry.db").is_file()
