"""Class weights (none | balanced | a list) and the class-balanced, length-bucketed sampler."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SMS, tiny_config

from textlstm import TextlstmError, config
from textlstm.batching import BucketBatchSampler
from textlstm.cli import main
from textlstm.config import parse_class_weights
from textlstm.imbalance import BalancedBucketSampler, loss_weights
from textlstm.training import fit


def test_class_weights_from_set_and_toml(tmp_path):
    cfg = config.build(None, ("train.class_weights=[1,3]",))
    assert parse_class_weights(cfg.train.class_weights) == [1.0, 3.0]
    toml = tmp_path / "run.toml"
    toml.write_text('[train]\nclass_weights = [1, 2.5]\nsampler = "balanced"\n')
    cfg = config.build(str(toml))
    cfg.train.check()
    assert parse_class_weights(cfg.train.class_weights) == [1.0, 2.5]
    assert cfg.train.sampler == "balanced"
    assert parse_class_weights("Balanced") == "balanced" and parse_class_weights("none") == "none"


@pytest.mark.parametrize("bad", ["heavy", "[]", "[1, -2]", "[0, 0]", '["a", 1]', "{}", "[true]"])
def test_bad_class_weights_are_rejected(bad):
    with pytest.raises(TextlstmError, match="class_weights"):
        config.build(None, (f"train.class_weights={bad}",)).train.check()


def test_loss_weights_balanced_and_length_check():
    labels = [0] * 6 + [1] * 2
    np.testing.assert_allclose(loss_weights("balanced", labels, ["ham", "spam"]), [8 / 12, 2.0])
    assert loss_weights("none", labels, ["ham", "spam"]) is None
    np.testing.assert_allclose(loss_weights("[1, 3]", labels, ["ham", "spam"]), [1, 3])
    with pytest.raises(TextlstmError, match="3 weights but the data has 2 classes"):
        loss_weights("[1, 3, 5]", labels, ["ham", "spam"])


def test_wrong_number_of_weights_is_one_cli_error(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(SMS),
            "--set",
            "train.class_weights=[1,3,5]",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1
    assert "error: train.class_weights has 3 weights but the data has 2 classes" in result.output
    assert not (tmp_path / "r" / "config.json").exists()  # failed before writing a bundle


def imbalanced(n=1000, rare=0.1, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < rare).astype(np.int64)
    lengths = rng.integers(1, 80, n)
    return labels, lengths


def test_balanced_sampler_draws_classes_equally_and_buckets_lengths():
    labels, lengths = imbalanced()
    sampler = BalancedBucketSampler(labels, lengths, batch_size=32, seed=3)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        drawn = np.concatenate(batches)
        assert len(drawn) == len(labels)
        counts = np.bincount(labels[drawn])
        assert abs(counts[0] - counts[1]) <= 1
        # Rare texts repeat evenly: every one of them floor or ceil(500 / count) times.
        rare = np.flatnonzero(labels == 1)
        repeats = np.bincount(drawn, minlength=len(labels))[rare]
        assert repeats.max() - repeats.min() <= 1 and repeats.min() >= 1
        # Common texts are a fresh subsample, never repeated within an epoch.
        assert np.bincount(drawn, minlength=len(labels))[labels == 0].max() == 1

    # Still bucketed: padding about as low as the default sampler's, far below random.
    def padding(bs):
        return (
            sum(len(b) * lengths[b].max() - lengths[b].sum() for b in bs)
            / lengths[np.concatenate(bs)].sum()
        )

    plain = BucketBatchSampler(lengths, batch_size=32, seed=3).batches(0)
    rng = np.random.default_rng(0)
    random = np.array_split(rng.permutation(len(labels)), len(labels) // 32)
    assert padding(sampler.batches(0)) < 2 * padding(plain) + 0.02 < padding(random)
    # Same (seed, epoch) -> same batches (exact resume); a new epoch differs.
    again = BalancedBucketSampler(labels, lengths, batch_size=32, seed=3)
    assert all((a == b).all() for a, b in zip(again.batches(1), sampler.batches(1), strict=True))
    assert not np.array_equal(np.sort(sampler.batches(0)[0]), np.sort(sampler.batches(1)[0]))


def test_fit_with_the_balanced_sampler_and_listed_weights(tmp_path, capsys):
    cfg = tiny_config(
        "train.epochs=1", "train.sampler=balanced", "train.class_weights=[1,3]", "train.test=false"
    )
    result = fit(cfg, tmp_path / "run")
    assert "class weights: 1, 3" in capsys.readouterr().err
    saved = json.loads((result.run_dir / "config.json").read_text())["train"]
    assert saved["sampler"] == "balanced"
    assert parse_class_weights(saved["class_weights"]) == [1.0, 3.0]
    reloaded = config.from_dict(json.loads((result.run_dir / "config.json").read_text()))
    assert reloaded.train.sampler == "balanced"
    assert parse_class_weights(reloaded.train.class_weights) == [1.0, 3.0]
