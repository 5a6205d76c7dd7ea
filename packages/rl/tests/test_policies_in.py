"""Policies in: stable-baselines3 zips (PPO, A2C, DQN, SAC, TD3), TorchScript, certkit
checkpoints and module:factory from the command line; continuous actions; bad input."""

from __future__ import annotations

import base64
import json
import pickle
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from certkit.core.cli import main
from certkit.rl.loading import load_policy
from certkit.rl.policies import SB3Policy, TorchPolicy, mlp
from certkit.rl.policy_smoothing import certify_reward
from certkit.rl.sb3_zip import detect_algo, read_data

sb3 = pytest.importorskip("stable_baselines3")

ENVS = {"PPO": "CartPole-v1", "A2C": "CartPole-v1", "DQN": "CartPole-v1",
        "SAC": "Pendulum-v1", "TD3": "Pendulum-v1"}


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sb3")
    out = {}
    for algo, env in ENVS.items():
        kw = {"learning_starts": 0} if algo in ("DQN", "SAC", "TD3") else {}
        model = getattr(sb3, algo)("MlpPolicy", env, seed=0, device="cpu",
                                   policy_kwargs={"net_arch": [16]}, **kw)
        out[algo] = d / f"{algo.lower()}_model.zip"
        model.save(out[algo])
    return out


def _script(module: torch.nn.Module, path: Path) -> Path:
    """Save ``module`` as TorchScript (deprecated in torch >= 2.13, still loaded)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        torch.jit.script(module).save(str(path))
    return path


def _certify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["--json", "rl", "certify", "--episodes", "12", "--horizon", "15", *args])
    cap = capsys.readouterr()
    return rc, cap.out if rc == 0 else cap.err


@pytest.mark.parametrize("algo", list(ENVS))
def test_cli_certifies_sb3_zips_algorithm_read_from_the_zip(algo: str, zips: dict[str, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert detect_algo(read_data(zips[algo])) == algo
    env = ENVS[algo]
    extra = ["--bound", "dkw", "--budgets", "0,0.5"] if env == "Pendulum-v1" else ["--budgets", "0,0.5"]
    if algo in ("PPO", "SAC"):  # from the command line (slow: it rebuilds the whole CLI)
        rc, out = _certify(capsys, "-m", str(zips[algo]), "--env", env, *extra)
        assert rc == 0, out
        cert = json.loads(out)
    else:
        cert = certify_reward(load_policy(str(zips[algo]), gym.make(env)), env, 0.2, [0, 0.5],
                              episodes=12, horizon=15, bound="dkw" if algo == "TD3" else "cp").to_dict()
    assert cert["policy"] == f"stable-baselines3 {algo}" and cert["expected"][1] <= cert["expected"][0]
    # the adapter acts as the model's own deterministic predict
    pol = load_policy(str(zips[algo]), gym.make(env))
    obs = np.stack([gym.make(env).observation_space.sample() for _ in range(8)])
    model = getattr(sb3, algo).load(zips[algo], device="cpu")
    np.testing.assert_array_equal(pol(obs), model.predict(obs, deterministic=True)[0])


def test_algo_override_and_unknown_algorithm(zips: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _certify(capsys, "-m", str(zips["PPO"]), "--algo", "ppo", "--budgets", "0")
    assert rc == 0, out
    odd = tmp_path / "qrdqn.zip"  # an algorithm of another package (sb3-contrib's QR-DQN)
    with zipfile.ZipFile(zips["DQN"]) as src, zipfile.ZipFile(odd, "w") as dst:
        for item in src.namelist():
            blob = src.read(item)
            if item == "data":
                data = json.loads(blob)
                data["policy_class"]["__module__"] = "sb3_contrib.qrdqn.policies"
                blob = json.dumps(data).encode()
            dst.writestr(item, blob)
    rc, err = _certify(capsys, "-m", str(odd))
    assert rc == 2 and "unknown algorithm" in err and "sb3_contrib" in err and len(err.strip().splitlines()) == 1
    rc, err = _certify(capsys, "-m", str(zips["PPO"]), "--algo", "TRPO")
    assert rc == 2 and "algo" in err


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class _Clobber:
    """A pickle that would call an allowed class's constructor through copyreg (SB3's
    HumanOutputFormat opens its argument for writing: it would truncate the file)."""

    def __init__(self, victim: Path) -> None:
        self.victim = victim

    def __reduce__(self):
        import copyreg

        from stable_baselines3.common.logger import HumanOutputFormat

        return (copyreg._reconstructor, (HumanOutputFormat, HumanOutputFormat, str(self.victim)))


def test_sb3_zip_metadata_cannot_run_code(zips: dict[str, Path], tmp_path: Path) -> None:
    from certkit.rl.sb3_zip import safe_unpickle

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with pytest.raises(pickle.UnpicklingError, match="_reconstructor"):
        safe_unpickle(pickle.dumps(_Clobber(victim)))
    assert victim.read_text() == "keep me"
    # BUILD on a class (setting a class attribute, e.g. a method) is refused
    from stable_baselines3 import PPO

    patch = b"\x80\x04cstable_baselines3.ppo.ppo\nPPO\nN}Vload\nNs\x86b."  # PPO.load = None
    with pytest.raises(pickle.UnpicklingError, match="attributes"):
        safe_unpickle(patch)
    assert PPO.load is not None

    def doctored(key: str) -> Path:
        out = tmp_path / f"evil_{key}.zip"
        with zipfile.ZipFile(zips["PPO"]) as src, zipfile.ZipFile(out, "w") as dst:
            for item in src.namelist():
                blob = src.read(item)
                if item == "data":
                    data = json.loads(blob)
                    data[key] = {":type:": "x", ":serialized:": base64.b64encode(
                        pickle.dumps(_Evil(tmp_path / f"ran_{key}"))).decode()}
                    blob = json.dumps(data).encode()
                dst.writestr(item, blob)
        return out

    pol = load_policy(str(doctored("lr_schedule")), gym.make("CartPole-v1"))  # replaced: loads
    assert isinstance(pol, SB3Policy)
    with pytest.raises(ValueError, match="refusing"):
        load_policy(str(doctored("policy_class")), gym.make("CartPole-v1"), algo="PPO")
    assert not list(tmp_path.glob("ran_*"))  # the payload never ran


def test_torchscript_checkpoint_and_module_factory_from_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    net = mlp(4, 2, (8,))
    ts = _script(net, tmp_path / "pol.ts")
    sd = tmp_path / "sd.pt"
    torch.save(net.state_dict(), sd)
    (tmp_path / "h20_user_policies.py").write_text(
        "from certkit.rl.policies import mlp\n\ndef make():\n    return mlp(4, 2, (8,))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    outs = []
    for args in (["-m", str(ts)], ["-m", "h20_user_policies:make", "--state-dict", str(sd)]):
        rc, out = _certify(capsys, *args, "--budgets", "0,0.2")
        assert rc == 0, out
        outs.append(json.loads(out)["expected"])
    assert outs[0] == outs[1]  # the same network both ways
    # the process backend's spawned workers find the user's module too
    pol = load_policy("h20_user_policies:make", gym.make("CartPole-v1"), state_dict=str(sd))
    cert = certify_reward(pol, "CartPole-v1", 0.2, [0, 0.2], episodes=12, horizon=15,
                          backend="process", workers=1)
    assert cert.expected == outs[0]
    rc, err = _certify(capsys, "-m", "no_such_module_h20:make")
    assert rc == 2 and "cannot import" in err


class _Push(torch.nn.Module):
    """MountainCarContinuous: push in the direction of the velocity (solves it)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(100.0 * obs[:, 1:2])


def test_continuous_action_certificate_from_the_command_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ts = _script(_Push(), tmp_path / "push.ts")
    rc = main(["--json", "rl", "certify", "-m", str(ts), "--env", "MountainCarContinuous-v0",
               "--episodes", "20", "--horizon", "400", "--sigma", "0.05", "--bound", "dkw",
               "--budgets", "0,0.05"])
    out = capsys.readouterr().out
    assert rc == 0, out
    cert = json.loads(out)
    assert cert["clean_mean"] > 50  # reaches the goal under noise
    assert cert["expected"][1] <= cert["expected"][0] <= cert["clean_mean"]
    pol = load_policy(str(ts), gym.make("MountainCarContinuous-v0"))
    assert isinstance(pol, TorchPolicy) and not pol.discrete


def test_bad_policies_and_envs_fail_with_one_line(zips: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _certify(capsys, "-m", str(zips["PPO"]), "--env", "Acrobot-v1")
    assert rc == 2 and "policy:" in err and len(err.strip().splitlines()) == 1
    three = _script(mlp(4, 3, (8,)), tmp_path / "three.ts")
    rc, err = _certify(capsys, "-m", str(three), "--env", "FrozenLake-v1")
    assert rc == 2 and "Box" in err and len(err.strip().splitlines()) == 1
    # the same checks through the API (each command run rebuilds the whole CLI: slow)
    with pytest.raises(ValueError, match="policy: the model's action space Box"):
        load_policy(str(zips["SAC"]), _BoxActions2())
    with pytest.raises(ValueError, match=r"\(3,\) scores .* 2 actions"):
        load_policy(str(three), gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="algo"):
        load_policy(str(three), gym.make("CartPole-v1"), algo="PPO")
    with pytest.raises(ValueError, match="model"):
        load_policy(str(tmp_path / "missing.zip"), gym.make("CartPole-v1"))
    rc, err = _certify(capsys, "-m", str(three), "--env", "NoSuchEnv-v9")
    assert rc == 2 and "env" in err


class _BoxActions2(gym.Env):
    """Pendulum's observations with two-dimensional actions: SAC's (1,) actions do not fit."""

    observation_space = gym.spaces.Box(-8.0, 8.0, (3,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
