"""Bad configs through `prefnb check` and `prefnb train`: each ends with its own message naming the field, exit code 2,
no traceback, and nothing written to the output_dir."""
from pathlib import Path
import pytest
from _reliability import prefnb, in_process, assert_user_error, example, write_yaml, snapshot, EXAMPLES

BASE = """base_model: prefnb:tiny-chatml
datasets:
  - path: prefnb:toy-orca
    type: chatml.intel
output_dir: OUT
live_plots: false
max_steps: 2
"""
def ds(typ): return BASE.replace('type: chatml.intel', f'type: {typ}')

# (id, config text, substrings the error must contain); OUT is replaced by a fresh folder in tmp_path
CASES = [
    ('invalid-yaml', 'base_model: [unclosed\nrl: dpo\n', ["not valid YAML: while parsing a flow sequence", 'line 1, column 13']),
    ('tab-indent', 'base_model: x\n\trl: dpo\n', ["not valid YAML", "found character '\\t' that cannot start any token"]),
    ('python-object-tag', BASE + "seed: !!python/object/apply:os.system ['touch PWNED']\n",
     ["could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'", 'prefnb reads plain YAML only (no !!python tags)']),
    ('python-name-tag', BASE.replace('base_model: prefnb:tiny-chatml', 'base_model: !!python/name:os.system'),
     ["tag 'tag:yaml.org,2002:python/name:os.system'", 'prefnb reads plain YAML only']),
    ('top-level-list', '- base_model\n- rl\n', ['expected a mapping of option: value at the top level, got list']),
    ('empty-file', '', ['expected a mapping of option: value at the top level, got NoneType']),
    ('batch-size-word', BASE + 'micro_batch_size: two\n', ["micro_batch_size: got 'two': Input should be a valid integer"]),
    ('lr-word', BASE + 'learning_rate: fast\n', ["learning_rate: got 'fast': Input should be a valid number"]),
    ('trust-remote-code-maybe', BASE + 'trust_remote_code: maybe\n', ["trust_remote_code: got 'maybe': Input should be a valid boolean"]),
    ('datasets-not-a-list', BASE.replace('datasets:\n  - path: prefnb:toy-orca\n    type: chatml.intel', 'datasets: prefnb:toy-orca'),
     ["datasets: got 'prefnb:toy-orca': Input should be a valid list"]),
    ('batch-size-negative', BASE + 'micro_batch_size: -1\n', ['micro_batch_size: got -1: Input should be greater than or equal to 1']),
    ('batch-size-zero', BASE + 'micro_batch_size: 0\n', ['micro_batch_size: got 0: Input should be greater than or equal to 1']),
    ('grad-accum-zero', BASE + 'gradient_accumulation_steps: 0\n', ['gradient_accumulation_steps: got 0: Input should be greater than or equal to 1']),
    ('sequence-len-zero', BASE + 'sequence_len: 0\n', ['sequence_len: got 0: Input should be greater than or equal to 16']),
    ('epochs-zero', BASE + 'num_epochs: 0\n', ['num_epochs: got 0: Input should be greater than 0']),
    ('val-set-size-above-one', BASE + 'val_set_size: 1.5\n', ['val_set_size: got 1.5: Input should be less than 1']),
    ('lora-r-zero', BASE + 'adapter: lora\nlora_r: 0\n', ['lora_r: got 0: Input should be greater than or equal to 1']),
    ('unknown-method', BASE + 'rl: ppo\n', ["rl: got 'ppo': Input should be 'dpo', 'ipo', 'kto', 'orpo' or 'simpo'"]),
    ('unknown-strategy', ds('chatml.intl'), ["datasets[0].type: unknown strategy 'chatml.intl' for rl=dpo; did you mean chatml.intel"]),
    ('strategy-os-system', ds('os.system'), ["datasets[0].type: unknown strategy 'os.system' for rl=dpo"]),
    ('strategy-dotted-function', ds('prefnb.zoo.toy_rows'), ["datasets[0].type: unknown strategy 'prefnb.zoo.toy_rows' for rl=dpo"]),
    ('strategy-of-another-method', ds('zephyr.nectar') + 'rl: kto\n',
     ["datasets[0].type: unknown strategy 'zephyr.nectar' for rl=kto"]),
    ('empty-datasets', BASE.replace('datasets:\n  - path: prefnb:toy-orca\n    type: chatml.intel', 'datasets: []'),
     ['datasets: got []: List should have at least 1 item after validation, not 0']),
    ('no-datasets', BASE.replace('datasets:\n  - path: prefnb:toy-orca\n    type: chatml.intel\n', ''), ['datasets: missing; it is required']),
    ('no-base-model', BASE.replace('base_model: prefnb:tiny-chatml\n', ''), ['base_model: missing; it is required']),
    ('unknown-key', BASE + 'learning_rat: 0.1\n', ['learning_rat: unknown option (neither prefnb nor axolotl knows it); did you mean learning_rate?']),
    ('unknown-dataset-key', BASE.replace('    type: chatml.intel', '    typ: chatml.intel'), ['datasets[0].typ: unknown dataset option; did you mean type?']),
    ('removed-trl-option', BASE + 'rpo_alpha: 0.5\n', ['rpo_alpha: 0.5 was removed in TRL 1.16; use dpo_loss_type: [sigmoid, sft] with dpo_loss_weights: [1.0, 0.5] (RPO).']),
    ('bf16-and-fp16', BASE + 'bf16: true\nfp16: true\n', ['bf16: true and fp16: true: choose one.']),
    ('4bit-without-adapter', BASE + 'load_in_4bit: true\n', ['load_in_4bit: true without an adapter: quantised weights cannot be fine-tuned directly.']),
    ('warmup-steps-and-ratio', BASE + 'warmup_steps: 5\nwarmup_ratio: 0.1\n', ['warmup_steps: 5 and warmup_ratio: 0.1: give one of them.']),
    ('kto-batch-of-one', BASE + 'rl: kto\nmicro_batch_size: 1\n', ['micro_batch_size: 1 with rl: kto: KTO estimates its KL term']),
    ('precompute-without-reference', BASE + 'rl: simpo\nprecompute_ref_log_probs: true\n', ['precompute_ref_log_probs: true with rl: simpo, which has no reference model.']),
    ('sample-packing', BASE + 'sample_packing: true\n', ['sample_packing: true cannot be used with rl: dpo']),
    ('ipo-label-smoothing', BASE + 'rl: ipo\ndpo_label_smoothing: 0.1\n', ['dpo_label_smoothing: 0.1 with rl: ipo: IPO has no label smoothing']),
    ('beta-conflict', BASE + 'rl_beta: 0.1\ndpo_beta: 0.2\n', ['rl_beta: 0.1 and dpo_beta: 0.2 disagree; keep only rl_beta.']),
    ('option-of-another-method', BASE + 'simpo_gamma: 0.5\n', ['simpo_gamma: 0.5 is not used by rl: dpo']),
]

def _write(tmp_path, text):
    out = tmp_path/'out'
    p = tmp_path/'config.yml'; p.write_text(text.replace('OUT', str(out)))
    return p, out

@pytest.mark.parametrize('name,text,needles', CASES, ids=[c[0] for c in CASES])
def test_check_rejects(name, text, needles, tmp_path):
    p, out = _write(tmp_path, text)
    r = prefnb('check', p, cwd=tmp_path)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, (r.stdout, r.stderr)
    said = r.stdout + r.stderr
    for n in needles: assert n in said, (n, said)
    assert not (tmp_path/'PWNED').exists()

@pytest.mark.parametrize('name,text,needles', CASES, ids=[c[0] for c in CASES])
def test_train_rejects_before_writing_anything(name, text, needles, tmp_path, monkeypatch):
    "The same configs through `prefnb train` (same dispatcher, in this process): exit 2 and the output_dir never created."
    monkeypatch.chdir(tmp_path)
    p, out = _write(tmp_path, text)
    rc, err = in_process('train', [p])
    assert rc == 2, err
    for n in needles: assert n in err, (n, err)
    assert not out.exists() and not (tmp_path/'PWNED').exists()

def test_train_cli_subprocess_user_errors(tmp_path):
    "Two configs through the real console script: the message, exit 2, no traceback, nothing written."
    for name in ('invalid-yaml', 'python-object-tag'):
        text, needles = next((t, n) for c, t, n in CASES if c == name)
        p, out = _write(tmp_path, text)
        assert_user_error(prefnb('train', p, cwd=tmp_path), *needles)
        assert not out.exists() and not (tmp_path/'PWNED').exists()

def test_missing_config_file(tmp_path):
    for cmd in ('check', 'train'):
        assert_user_error(prefnb(cmd, tmp_path/'nope.yml'), f"config: no file '{tmp_path/'nope.yml'}'; give the path of a YAML config")

@pytest.mark.parametrize('sets,needle', [
    (['max_steps'], '--set max_steps: expected key=value, e.g. --set learning_rate=5e-6'),
    (['bogus_key=1'], 'bogus_key: unknown option (neither prefnb nor axolotl knows it)'),
    (['micro_batch_size=0'], 'micro_batch_size: got 0: Input should be greater than or equal to 1'),
    pytest.param(['max_steps=[1'], '--set max_steps=[1'),
])
def test_train_bad_set_overrides(sets, needle, tmp_path):
    out = tmp_path/'out'
    rc, err = in_process('train', [EXAMPLES/'tiny-dpo.yml', '--set', f'output_dir={out}', *sets])
    assert rc == 2 and needle in err, err
    assert not out.exists()

# ---- paths that do not exist, and runtime-only mistakes: the config is valid, the run cannot start
def _fresh(tmp_path, **over):
    d = example(output_dir=str(tmp_path/'out')); d.update(over)
    return write_yaml(tmp_path/'c.yml', d), Path(d['output_dir'])

def test_data_path_does_not_exist(tmp_path):
    p, out = _fresh(tmp_path, datasets=[dict(path=str(tmp_path/'nope.jsonl'), type='chatml.intel')])
    assert prefnb('check', p).returncode == 0          # check validates the config; the data is read by train
    rc, err = in_process('train', [p])
    assert rc == 2 and f"datasets[0] ({tmp_path/'nope.jsonl'}): could not load" in err and 'FileNotFoundError' in err, err

@pytest.mark.parametrize('over,needle', [
    (dict(resume_from_checkpoint='/nonexistent/checkpoint-9'), 'resume_from_checkpoint: /nonexistent/checkpoint-9 does not exist'),
    (dict(bf16=True), 'bf16/fp16: mixed precision needs a CUDA GPU and this machine has cpu'),
    (dict(chat_template='vicuna9'), "chat_template: unknown name 'vicuna9'"),
    (dict(val_set_size=0.999), 'val_set_size: 0.999 leaves no training rows out of 256 kept'),
])
def test_runtime_mistakes(over, needle, tmp_path, monkeypatch):
    "On any machine: the device is a CPU's (the bf16 mistake is a CPU one), not whatever GPU runs the suite."
    import prefnb.models as M
    from prefnb.memory import gpu_facts
    monkeypatch.setattr(M, 'device_info', lambda: gpu_facts('cpu'))
    p, out = _fresh(tmp_path, **over)
    rc, err = in_process('train', [p])
    assert rc == 2 and needle in err, err

@pytest.mark.parametrize('over,needle', [
    pytest.param(dict(base_model='/nonexistent/model'), 'base_model'),
    pytest.param(dict(base_model='prefnb:tiny-gpt9'), 'prefnb:tiny-gpt9'),
    pytest.param(dict(tokenizer_config='/nonexistent/tok'), 'tokenizer_config'),
])
def test_model_path_does_not_exist(over, needle, tmp_path):
    p, out = _fresh(tmp_path, **over)
    rc, err = in_process('train', [p])
    assert rc == 2 and needle in err and 'Traceback' not in err, err

def test_output_dir_is_a_file(tmp_path):
    f = tmp_path/'taken'; f.write_text('mine')
    p, _ = _fresh(tmp_path, output_dir=str(f))
    rc, err = in_process('train', [p])
    assert rc == 2 and f'output_dir: {f}' in err and f.read_text() == 'mine'

def test_a_failed_start_leaves_no_run_behind(tmp_path):
    p, out = _fresh(tmp_path, datasets=[dict(path=str(tmp_path/'nope.jsonl'), type='chatml.intel')])
    rc, err = in_process('train', [p])
    assert rc == 2
    assert not out.exists() or snapshot(out) == {}, snapshot(out)
