from pathlib import Path

import pytest

from unilandmark.training.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["demo.yaml", "isbi2015.yaml", "isbi2015_cpu.yaml",
                                  "universal_cpu.yaml", "gu2net_paper.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.domains and cfg.model.name == "gu2net"


def test_paper_config_has_the_published_settings():
    cfg = load_config(ROOT / "configs" / "gu2net_paper.yaml")
    sizes = {d.name: tuple(d.input_size) for d in cfg.domains}
    assert sizes == {"head": (416, 512), "hand": (368, 512), "chest": (512, 512)}
    assert cfg.optim.lr == 1e-4 and cfg.optim.max_lr == 1e-2 and cfg.optim.loss == "bce"
    assert all(d.sigma == 3.0 for d in cfg.domains)


def test_dotted_overrides_and_errors():
    cfg = load_config(ROOT / "configs" / "demo.yaml",
                      ["train.epochs=3", "domains.1.sigma=4.5", "model.width=8"])
    assert cfg.train.epochs == 3 and cfg.domains[1].sigma == 4.5 and cfg.model.width == 8
    with pytest.raises(ConfigError, match="unknown key 'train.nonsense' .valid here: epochs"):
        load_config(ROOT / "configs" / "demo.yaml", ["train.nonsense=1"])
    with pytest.raises(ValueError, match="expected key=value"):
        load_config(ROOT / "configs" / "demo.yaml", ["train.epochs"])
    with pytest.raises(FileNotFoundError, match="no such config"):
        load_config(ROOT / "configs" / "absent.yaml")
