"""Hostile configs and data cannot run code: strategy names are registry look-ups, YAML is read safely, chat templates
render in Jinja's sandbox, `trust_remote_code` stays off unless the config says so, weights are safetensors and
checkpoint state is read with `weights_only=True`; tokens never reach logs, config.yml or trl_args.json."""
import json, re, shutil, sys
from pathlib import Path
import pytest
from prefnb.core import UserError
from prefnb import data as D
from prefnb.zoo import toy_rows
from _reliability import ROOT, example, in_process, prefnb, write_yaml, warnings_off

EVIL = "import pathlib; pathlib.Path({marker!r}).write_text('ran')\n"

@pytest.fixture
def evil(tmp_path, monkeypatch):
    "A module `evilmod` (and a file evil.py) on sys.path that leave a marker file when imported."
    marker = tmp_path/'PWNED'
    (tmp_path/'evilmod.py').write_text(EVIL.format(marker=str(marker)) + 'def default(row, **kw): return row\n')
    (tmp_path/'evil.py').write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path)); monkeypatch.chdir(tmp_path)
    sys.modules.pop('evilmod', None)
    yield marker
    assert not marker.exists(), 'a config string ran code'
    assert 'evilmod' not in sys.modules

NAMES = ['os.system', 'prefnb.zoo.toy_rows', 'builtins.eval', '__import__', 'subprocess.run', 'evilmod', 'evilmod.default',
         'evil.py', './evil.py', 'prefnb.strategies.import_strategies', 'chatml.intel; import os']

@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('rl', ['dpo', 'kto'])
def test_strategy_names_are_registry_lookups(name, rl, evil, tok):
    with pytest.raises(UserError, match=re.escape(f"type: unknown strategy {name!r} for rl={rl}")):
        D.prepare(dict(rl=rl, datasets=[dict(path='prefnb:toy-orca', type=name)]), tok)

def test_strategy_names_through_check(evil, tmp_path):
    c = write_yaml(tmp_path/'c.yml', dict(base_model='prefnb:tiny-chatml', datasets=[dict(path='prefnb:toy-orca', type=n) for n in NAMES]))
    r = prefnb('check', c, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout.count("unknown strategy") == len(NAMES), r.stdout

def test_yaml_tags_never_build_objects(evil, tmp_path):
    for tag in ('!!python/object/apply:os.system', '!!python/object/new:os.system', '!!python/module:evilmod'):
        c = tmp_path/'c.yml'; c.write_text(f"base_model: prefnb:tiny-chatml\nseed: {tag} ['touch {evil}']\n")
        r = prefnb('check', c, cwd=tmp_path)
        assert r.returncode == 2 and 'prefnb reads plain YAML only (no !!python tags)' in r.stderr, r.stderr

def test_set_overrides_never_build_objects(evil, tmp_path):
    "`--set` values are YAML too; a tag there must not run (the exit code is the parse_sets bug below)."
    try: in_process('train', [ROOT/'examples'/'tiny-dpo.yml', '--set', f'output_dir={tmp_path/"o"}', f"seed=!!python/object/apply:os.system ['touch {evil}']"])
    except Exception as e: assert 'ConstructorError' in type(e).__name__, e

def test_set_override_tag_is_a_user_error(evil, tmp_path):
    rc, err = in_process('train', [ROOT/'examples'/'tiny-dpo.yml', '--set', f'output_dir={tmp_path/"o"}', "seed=!!python/object/apply:os.system ['true']"])
    assert rc == 2 and 'seed' in err

def test_custom_strategies_load_only_by_explicit_opt_in(evil):
    "The documented opt-in: prefnb.strategies.import_strategies(module) in Python code, never a config string."
    from prefnb import strategies as S
    assert 'import_strategies' in S.__all__
    import prefnb.config as C
    assert 'import_strategies' not in Path(C.__file__).read_text() and 'import_strategies' not in Path(D.__file__).read_text()

@pytest.mark.parametrize('fmt', [
    pytest.param('{prompt.__class__.__init__.__globals__}'),
    pytest.param('{prompt.__class__.__mro__}'),
    '{nope}'])
def test_format_strings_only_fill_named_fields(fmt, tok):
    with pytest.raises(UserError, match=re.escape(f"type.prompt_format: {fmt!r} cannot be filled")):
        D.prepare(dict(rl='dpo', datasets=[dict(path=toy_rows('pairs', 2), type=dict(prompt_format=fmt))]), tok)

JINJA = ["{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}",
         "{{ ''.__class__.__mro__[1].__subclasses__() }}",
         "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch PWNED') }}"]

@pytest.mark.parametrize('tmpl', JINJA)
def test_chat_template_jinja_is_sandboxed(tmpl, evil, tok):
    "A hostile chat_template_jinja cannot reach Python: rendering is refused and nothing runs."
    c = dict(rl='dpo', datasets=[dict(path=toy_rows('messages', 2), type='chat_template.default', chat_template_jinja=tmpl)])
    with pytest.raises(Exception) as e: D.prepare(c, tok)
    assert 'unsafe' in str(e.value) or 'undefined' in str(e.value).lower(), e.value

def test_chat_template_jinja_refusal_is_a_user_error(tok):
    c = dict(rl='dpo', datasets=[dict(path=toy_rows('messages', 2), type='chat_template.default', chat_template_jinja=JINJA[1])])
    with pytest.raises(UserError, match='chat_template_jinja'): D.prepare(c, tok)

# ---- trust_remote_code
@pytest.fixture
def loads(monkeypatch):
    "Record the keyword arguments of every from_pretrained call of transformers' Auto classes."
    import transformers
    calls = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM, transformers.AutoConfig):
        orig = cls.from_pretrained
        def rec(*a, _orig=orig, _name=cls.__name__, **kw):
            calls.append((_name, kw.get('trust_remote_code'))); return _orig(*a, **kw)
        monkeypatch.setattr(cls, 'from_pretrained', rec)
    return calls

def test_trust_remote_code_is_off_by_default(loads, tmp_path):
    from prefnb.trainer import build_trainer
    with warnings_off(): build_trainer(example(output_dir=str(tmp_path/'o')))
    names = {n for n, _ in loads}
    assert {'AutoTokenizer', 'AutoModelForCausalLM'} <= names, loads
    assert all(v is not True for _, v in loads), loads
    assert ('AutoTokenizer', False) in loads and ('AutoModelForCausalLM', False) in loads

def test_trust_remote_code_only_when_the_config_says_so(loads, tmp_path):
    from prefnb.trainer import build_trainer
    with warnings_off(): build_trainer(example(output_dir=str(tmp_path/'o'), trust_remote_code=True))
    assert ('AutoTokenizer', True) in loads and ('AutoModelForCausalLM', True) in loads

# ---- safe loaders
def test_run_folder_holds_safetensors_only(finished_run):
    files = [p.relative_to(finished_run) for p in finished_run.rglob('*') if p.is_file()]
    weights = [f for f in files if f.suffix in ('.safetensors', '.bin', '.pt', '.pth', '.ckpt', '.pkl', '.pickle')]
    assert Path('model.safetensors') in weights and Path('checkpoint-2/model.safetensors') in weights
    pickles = sorted(str(f) for f in weights if f.suffix != '.safetensors')
    # only trainer state pickles (loaded by transformers with weights_only=True, see below); never model weights
    assert {Path(f).name for f in pickles} <= {'training_args.bin', 'optimizer.pt', 'scheduler.pt', 'rng_state.pth'}, pickles
    assert not [f for f in files if f.name.startswith(('pytorch_model', 'adapter_model')) and f.suffix == '.bin']

def test_resume_reads_checkpoint_state_with_weights_only(finished_run, tmp_path, monkeypatch):
    import torch
    from prefnb.config import load_config
    from prefnb.run import train
    run = tmp_path/'run'; shutil.copytree(finished_run, run)
    seen, orig = [], torch.load
    def rec(f, *a, **kw): seen.append((Path(str(f)).name, kw.get('weights_only'))); return orig(f, *a, **kw)
    monkeypatch.setattr(torch, 'load', rec)
    cfg = load_config(example(output_dir=str(run), max_steps=5, save_steps=2, save_total_limit=None, logging_steps=1, resume_from_checkpoint='auto'))
    with warnings_off(): train(cfg)
    assert {n for n, _ in seen} >= {'optimizer.pt', 'scheduler.pt', 'rng_state.pth'}, seen
    assert all(w is True for _, w in seen), seen

def test_prefnb_source_has_no_unsafe_loader():
    "No pickle, no unsafe YAML, no eval/exec, torch.load only with weights_only=True; importlib only for the fixed CLI and top-level API tables and the opt-in."
    bad = []
    for f in sorted((ROOT/'prefnb').glob('*.py')):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split('#')[0]
            if re.search(r'\byaml\.(load|unsafe_load|full_load)\(|\bLoader=|\bpickle\b|\bdill\b|(?<![\w.])eval\(|(?<![\w.])exec\(', code) \
               or ('torch.load(' in code and 'weights_only=True' not in code):
                bad.append(f'{f.name}:{n}: {line.strip()}')
            if 'import_module(' in code and f.name not in ('__init__.py', 'cli.py', 'core.py', 'trainer.py', 'strategies.py'): bad.append(f'{f.name}:{n}: {line.strip()}')
    assert bad == []

# ---- secrets
SECRETS = dict(HF_TOKEN='hf_SeCrEtToKeN0123456789abcdef', HUGGING_FACE_HUB_TOKEN='hf_OtherSeCrEt9876543210',
               WANDB_API_KEY='wandb0123456789SeCrEtKeY0123456789abcdef', COMET_API_KEY='cometSeCrEt42')

def test_tokens_never_reach_logs_or_run_files(tmp_path):
    run = tmp_path/'run'
    # an axolotl config may carry a key; prefnb ignores it and must not write it anywhere
    c = write_yaml(tmp_path/'c.yml', example(output_dir=str(run), adapter='lora', lora_r=4, lora_alpha=8, save_steps=1,
                                              comet_api_key='cometInConfigSeCrEt77', hf_use_auth_token=True))
    r = prefnb('train', c, env=SECRETS)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run/'adapter_model.safetensors').exists() and not list(run.rglob('adapter_model.bin'))
    secrets = [*SECRETS.values(), 'cometInConfigSeCrEt77']
    texts = {'stdout': r.stdout, 'stderr': r.stderr}
    texts.update({str(p.relative_to(run)): p.read_bytes().decode('latin-1') for p in run.rglob('*') if p.is_file()})
    assert {'config.yml', 'trl_args.json', 'metrics.jsonl', 'data_report.json', 'checkpoint-1/trainer_state.json'} <= set(texts)
    leaks = [(k, s) for k, t in texts.items() for s in secrets if s in t]
    assert leaks == []
    assert 'comet_api_key' not in (run/'config.yml').read_text()

def test_precomputed_reference_cache_is_arrow(tmp_path, monkeypatch):
    "precompute_ref_log_probs keeps the reference log-probs as dataset columns (Arrow files), never a pickle."
    import torch
    from prefnb.config import load_config
    from prefnb.run import train
    seen, orig = [], torch.load
    def rec(f, *a, **kw): seen.append((str(f), kw.get('weights_only'))); return orig(f, *a, **kw)
    monkeypatch.setattr(torch, 'load', rec)
    with warnings_off(): res = train(load_config(example(output_dir=str(tmp_path/'run'), precompute_ref_log_probs=True)))
    ds = res.trainer.train_dataset
    assert {'ref_chosen_logps', 'ref_rejected_logps'} <= set(ds.column_names)
    assert ds.cache_files and all(f['filename'].endswith('.arrow') for f in ds.cache_files)
    assert all(w is True for _, w in seen), seen
