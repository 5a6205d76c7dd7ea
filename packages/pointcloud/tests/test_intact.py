"""INTACT: saliency, critical points, the curriculum hook, the training variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from certkit.pointcloud import intact
from certkit.pointcloud.corruptions import corrupt
from certkit.pointcloud.data import make_shapes


def test_saliency_matches_finite_differences(tiny: tuple) -> None:
    m, X, y = tiny
    x = torch.from_numpy(X[:1]).double()
    md = m.double()
    try:
        s = intact.saliency(md, x, torch.from_numpy(y[:1])).numpy()[0]
        # naive reference: central differences of the loss per coordinate
        h = 1e-5
        ref = np.zeros(x.shape[1])
        for i in range(0, x.shape[1], 7):
            g = []
            for c in range(3):
                xp, xm = x.clone(), x.clone()
                xp[0, i, c] += h
                xm[0, i, c] -= h
                with torch.no_grad():
                    lp = torch.nn.functional.cross_entropy(md(xp), torch.from_numpy(y[:1]))
                    lm = torch.nn.functional.cross_entropy(md(xm), torch.from_numpy(y[:1]))
                g.append(float(lp - lm) / (2 * h))
            ref[i] = np.linalg.norm(g)
        np.testing.assert_allclose(s[::7], ref[::7], rtol=1e-4, atol=1e-8)
    finally:
        m.float()


def test_critical_mask_and_curriculum_hook(tiny: tuple) -> None:
    m, X, y = tiny
    xb, yb = torch.from_numpy(X[:4]), torch.from_numpy(y[:4])
    crit = intact.critical_mask(m, xb, yb, 0.25)
    assert crit.sum(1).tolist() == [16] * 4
    s = intact.saliency(m, xb, yb)
    assert (s[crit].min() >= s[~crit].reshape(4, -1).max(1).values.min() - 1e-12)
    hook = intact.curriculum_transform(m, critical_frac=0.25, max_sigma=0.1, max_drop=0.9, seed=0)
    torch.testing.assert_close(hook(xb, yb, 0.0), xb)  # progress 0: no perturbation
    out = hook(xb, yb, 0.99)
    changed = (out != xb).any(-1)
    assert changed.any()
    assert not (changed & ~crit).any()  # only critical points are touched
    # a dropped point becomes a copy of a surviving point of the same cloud
    for b in range(4):
        pts = {tuple(p) for p in out[b].tolist()}
        src = {tuple(p) for p in xb[b].tolist()} | {tuple(p) for p in out[b][changed[b]].tolist()}
        assert pts <= src


def test_training_variants_and_corruption_accuracy(tiny: tuple) -> None:
    m, X, y = tiny
    Xs, ys = make_shapes(32, 64, num_classes=4, seed=9)
    for kind in ("plain", "adversarial", "intact"):
        s = intact.train_variant(kind, Xs, ys, 4, teacher=m, epochs=1, seed=0)
        assert s(torch.from_numpy(Xs[:2])).shape == (2, 4)
    with pytest.raises(ValueError, match="teacher"):
        intact.train_variant("intact", Xs, ys, 4, epochs=1)
    with pytest.raises(ValueError, match="kind"):
        intact.train_variant("mixup", Xs, ys, 4, epochs=1)
    acc = intact.corruption_accuracy(m, X[:8], y[:8], corrupt, ["gaussian", "cutout"], [1, 5])
    assert acc.shape == (2, 2) and ((acc >= 0) & (acc <= 1)).all()
    both = intact.corruption_accuracy([m, m], X[:8], y[:8], corrupt, ["gaussian"], [1])
    assert both.shape == (2, 1, 1) and both[0, 0, 0] == both[1, 0, 0]
    # naive reference for one cell
    cl = [corrupt(x, "gaussian", 1, index=i) for i, x in enumerate(X[:8])]
    ref = np.mean([int(m(torch.from_numpy(c[None])).argmax()) == t for c, t in zip(cl, y[:8], strict=True)])
    assert both[0, 0, 0] == pytest.approx(ref)


def test_compare_training_tiny() -> None:
    r = intact.compare_training(n_train=24, n_points=32, epochs=1, n_eval=6, severities=(5,))
    assert set(r) == {"plain", "adversarial", "intact"}
    assert r["plain"]["mCE_modelnet40c"] == pytest.approx(1.0)  # the baseline scores 1
    for v in r.values():
        assert 0 <= v["clean"] <= 1 and 0 <= v["pgd_accuracy"] <= 1


@pytest.mark.parametrize("task", intact.META_TASKS)
def test_task_perturb_levels_and_point_sets(task: str) -> None:
    X, _ = make_shapes(3, 40, num_classes=4, seed=2)
    xb = torch.from_numpy(X)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(intact.task_perturb(xb, task, g, strength=0.0), xb)  # level 0
    out = intact.task_perturb(xb, task, torch.Generator().manual_seed(1))
    assert out.shape == xb.shape and torch.isfinite(out).all()
    if task in ("dropout", "cluster_drop"):
        for b in range(3):  # dropped points become copies of kept points of the same cloud
            assert {tuple(p) for p in out[b].tolist()} <= {tuple(p) for p in xb[b].tolist()}
    with pytest.raises(ValueError, match="task"):
        intact.task_perturb(xb, "fog", g)


def test_meta_teacher_is_reptile(tiny: tuple) -> None:
    m, X, y = tiny
    before = {k: v.clone() for k, v in m.state_dict().items()}
    # meta_lr = 1 and one meta-step: the teacher is the adapted copy; rebuild it naively
    # (the head's dropout draws from torch's global generator: same seed on both sides)
    torch.manual_seed(0)
    t = intact.meta_teacher(m, X, y, meta_steps=1, inner_steps=2, inner_lr=1e-2, meta_lr=1.0,
                            batch_size=8, tasks=("clean",), seed=3)
    for k, v in m.state_dict().items():  # the input model is untouched
        torch.testing.assert_close(v, before[k])
    import copy

    g = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    ref = copy.deepcopy(m)
    ref.train()
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    torch.randint(1, (), generator=g)  # the task draw
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(2):
        b = torch.randperm(len(Xt), generator=g)[:8]
        torch.rand((), generator=g)  # the clean task's level draw
        loss = torch.nn.functional.cross_entropy(ref(Xt[b]), yt[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(t.state_dict()[k], v)
    # a small meta step moves the weights a little, towards the adapted ones
    torch.manual_seed(0)
    t2 = intact.meta_teacher(m, X, y, meta_steps=1, inner_steps=2, inner_lr=1e-2, meta_lr=0.25,
                             batch_size=8, tasks=("clean",), seed=3)
    w0, w1, w2 = (d["head.3.weight"] for d in (before, ref.state_dict(), t2.state_dict()))
    torch.testing.assert_close(w2, w0 + 0.25 * (w1 - w0))
    for bad in ({"meta_steps": 0}, {"inner_lr": 0.0}, {"tasks": ("rain",)}, {"tasks": ()}):
        with pytest.raises(ValueError):
            intact.meta_teacher(m, X, y, **bad)  # type: ignore[arg-type]


def test_compare_training_meta_teacher_and_ablation() -> None:
    r = intact.compare_training(n_train=24, n_points=32, epochs=1, n_eval=6, severities=(5,),
                                meta_steps=2, ablation=True)
    assert set(r) == {"plain", "adversarial", "intact", "intact_plain_teacher"}
