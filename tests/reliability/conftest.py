"""Fixtures of the reliability and safety suite; the helpers live in _reliability.py."""
import os
from pathlib import Path
import pytest
from _reliability import example, warnings_off

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes more than a minute on 2 CPU cores')

def pytest_collection_modifyitems(config, items):
    "Slow tests of this folder run only on request (-m slow, or PREFNB_SLOW=1), so CI's plain `pytest tests` stays fast."
    if os.environ.get('PREFNB_SLOW') or 'slow' in (config.getoption('-m') or ''): return
    here = Path(__file__).parent
    for it in items:
        if 'slow' in it.keywords and here in Path(str(it.fspath)).parents:
            it.add_marker(pytest.mark.skip(reason='slow: run with -m slow or PREFNB_SLOW=1'))

@pytest.fixture(scope='session')
def tok():
    "The ChatML tiny model's tokenizer."
    from transformers import AutoTokenizer
    from prefnb.zoo import resolve_model
    return AutoTokenizer.from_pretrained(resolve_model('prefnb:tiny-chatml'))

@pytest.fixture(scope='session')
def finished_run(tmp_path_factory):
    "A finished 4-step DPO run with checkpoints at steps 2 and 4 (trained once for the session, in this process)."
    from prefnb.config import load_config
    from prefnb.run import train
    run = tmp_path_factory.mktemp('finished')/'run'
    with warnings_off(): train(load_config(example(output_dir=str(run), max_steps=4, save_steps=2, save_total_limit=None, logging_steps=1)))
    return run
