"""prefnb.widgets: the config form built from the schema, driven from Python as a user drives it: per-method
fields, live validation messages, the Recommend / Memory / Preview / YAML / Train buttons, the YAML round trip
and `prefnb check` accepting what the form saves."""
import html, json, os, sys, warnings
from pathlib import Path
import pytest, yaml
import ipywidgets as W
from prefnb.config import PrefConfig, DatasetEntry, load_config
from prefnb.methods import METHODS
from prefnb.widgets import (config_form, ConfigForm, sections, field_notes, shown_for, HIDDEN, SECTIONS, TABS,
                            field_widget, field_label, from_text, to_text, message_field, free_run_dir, _TIP)

GOOD = dict(base_model='prefnb:tiny-chatml', datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')])
METHOD_FIELDS = {
    'dpo': ['rl', 'rl_beta', 'dpo_loss_type', 'dpo_loss_weights', 'dpo_label_smoothing', 'dpo_use_weighting', 'dpo_padding_free', 'precompute_ref_log_probs'],
    'ipo': ['rl', 'rl_beta', 'dpo_padding_free', 'precompute_ref_log_probs'],
    'kto': ['rl', 'rl_beta', 'precompute_ref_log_probs', 'kto_desirable_weight', 'kto_undesirable_weight'],
    'orpo': ['rl', 'orpo_alpha'],
    'simpo': ['rl', 'rl_beta', 'simpo_gamma', 'cpo_alpha'],
}


# --- built from the schema ---------------------------------------------------------------------------------------

def test_every_config_field_is_placed_in_a_known_section_or_hidden_on_purpose():
    s = sections()
    assert list(s) == list(TABS), f"fields under a heading SECTIONS does not know: {s.get('other')}"
    placed = [f for fs in s.values() for f in fs]
    assert len(placed) == len(set(placed))
    assert sorted(placed + list(HIDDEN)) == sorted(PrefConfig.model_fields)
    assert set(h for h, _ in field_notes(PrefConfig).values()) <= set(SECTIONS)

def test_ipywidgets_is_the_version_this_run_asked_for():
    "tools/test.sh runs this file a second time with Colab's ipywidgets 7.7.1 on the path; make sure it really did."
    want = os.environ.get('PREFNB_EXPECT_IPYWIDGETS')
    assert W.__version__ == want if want else W.__version__.split('.')[0] in ('7', '8')

def test_every_field_has_a_readable_label_and_its_comment_as_help():
    f = config_form(GOOD)
    for name in PrefConfig.model_fields:
        if name in HIDDEN or name == 'datasets': continue
        note = field_notes(PrefConfig)[name][1]
        assert getattr(f.fields[name], _TIP) == note != '', name
        label, widget, (helptext, _) = f.rows[name].children[0], f.rows[name].children[1], f.rows[name].children[2].children
        assert widget is f.fields[name] and '_' not in label.value.split('>')[1] and f'>{html.escape(note)}<' in helptext.value, name
    for name in DatasetEntry.model_fields: assert f'datasets[0].{name}' in f.fields
    assert getattr(f.fields['simpo_gamma'], _TIP) == 'SimPO target margin'
    assert field_label('gradient_checkpointing_kwargs') == 'gradient checkpointing kwargs' and field_label('datasets[0].path') == 'dataset path'
    assert list(f.section_buttons) == list(TABS) and list(f.sections) == list(TABS)
    assert not any(isinstance(w, W.Tab) for w in _walk(f))        # Colab's widget manager does not show Tab

def test_the_form_uses_only_what_this_ipywidgets_knows():
    "An option ipywidgets 7 does not know (a tooltip spelled the ipywidgets 8 way) is a traitlets DeprecationWarning: none."
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='.*unrecognized arguments', category=DeprecationWarning)
        f = config_form(GOOD)
    assert f.buttons['Train'].tooltip.startswith('train this config here')

def _walk(w):
    yield w
    for c in getattr(w, 'children', ()): yield from _walk(c)

def test_one_section_shows_at_a_time_and_errors_are_marked_on_theirs():
    f = config_form(GOOD)
    shown = lambda: [s for s, b in f.sections.items() if b.layout.display != 'none']
    assert shown() == ['model'] and f.section_buttons['model'].description == '▸ model'
    f.section_buttons['training'].click()
    assert shown() == ['training'] and f.section_buttons['training'].description == '▸ training'
    f.section_buttons['data'].click()
    f.fields['micro_batch_size'].value = '0'
    assert f.section_buttons['training'].description == 'training (1 error)' and f.section_buttons['training'].button_style == 'danger'
    assert f.section_buttons['data'].description == '▸ data' and f.section_buttons['data'].button_style == 'info'
    f.fields['micro_batch_size'].value = ''
    f.fields['datasets[0].type'].value = 'chatml.intell'; f.fields['learning_rate'].value = '-1'
    assert f.section_buttons['data'].description == '▸ data (1 error)' and f.section_buttons['training'].description == 'training (1 error)'
    f.fields['datasets[0].type'].value = 'chatml.intel'; f.fields['learning_rate'].value = ''
    assert f.section_buttons['training'].description == 'training' and f.section_buttons['training'].button_style == ''

def test_integers_stay_integers(tmp_path):
    f = config_form(dict(GOOD, num_epochs=2))
    f.fields['micro_batch_size'].value = '4'
    f.yaml_path.value = str(tmp_path/'c.yml'); f.buttons['YAML'].click()
    text = (tmp_path/'c.yml').read_text()
    assert 'num_epochs: 2\n' in text and 'micro_batch_size: 4\n' in text, text
    assert f.fields['num_epochs'].value == '2' and config_form(tmp_path/'c.yml').fields['num_epochs'].value == '2'
    f.fields['num_epochs'].value = '1.5'
    assert f.config.num_epochs == 1.5

def test_widget_kinds_follow_the_annotations():
    ann = {k: v.annotation for k, v in PrefConfig.model_fields.items()}
    assert [v for _, v in field_widget('rl', ann['rl']).options] == list(METHODS)
    assert [v for _, v in field_widget('adapter', ann['adapter']).options] == [None, 'lora', 'qlora']
    assert [v for _, v in field_widget('fp16', ann['fp16']).options] == ['auto', True, False]
    assert [v for _, v in field_widget('excess_length_strategy', ann['excess_length_strategy']).options] == ['drop', 'truncate', 'raise']
    assert isinstance(field_widget('live_plots', ann['live_plots']), W.Checkbox)
    assert isinstance(field_widget('rl_beta', ann['rl_beta']), W.Text)
    assert from_text('[1.0, 0.5]', ann['dpo_loss_weights']) == [1.0, 0.5]
    assert from_text('{pad_token: <pad>}', ann['special_tokens']) == {'pad_token': '<pad>'}
    assert from_text('./out/run', ann['output_dir']) == './out/run'
    assert to_text({'a': 1}) == '{"a": 1}' and to_text(0.1) == '0.1' and to_text('x') == 'x'

# --- methods -----------------------------------------------------------------------------------------------------

def test_switching_through_all_five_methods_shows_only_their_fields():
    f = config_form(GOOD)
    method_tab = sections()['method']
    for rl, want in METHOD_FIELDS.items():
        f.fields['rl'].value = rl
        shown = f.visible()
        assert [k for k in shown if k in method_tab] == want, rl
        hidden = [k for k in f.fields if k not in shown]
        assert all(f.rows[k].layout.display == 'none' for k in hidden)
        assert {'base_model', 'learning_rate', 'micro_batch_size', 'datasets[0].path', 'lora_r', 'output_dir'} <= set(shown)
        assert f.config is not None and f.config.rl == rl
        assert f.config.rl_beta == METHODS[rl].defaults().get('rl_beta')      # unset fields follow the method
    assert f.fields['rl_beta'].placeholder == '2.0' and f.fields['learning_rate'].placeholder == '5e-07'
    f.fields['adapter'].value = 'lora'
    assert (f.config.adapter, f.config.learning_rate, f.fields['learning_rate'].placeholder) == ('lora', 5e-6, '5e-06')

def test_a_value_for_another_method_stays_in_its_widget_but_not_in_the_config():
    f = config_form(dict(GOOD, rl='simpo'))
    f.fields['simpo_gamma'].value = '0.5'
    assert f.config.simpo_gamma == 0.5
    f.fields['rl'].value = 'dpo'
    assert f.errors == [] and f.config.simpo_gamma is None and 'simpo_gamma' not in f.values()
    f.fields['rl'].value = 'simpo'
    assert f.config.simpo_gamma == 0.5

def test_shown_for_reads_the_catalogue():
    assert shown_for('kto_desirable_weight', 'kto') and not shown_for('kto_desirable_weight', 'dpo')
    assert shown_for('orpo_alpha', 'orpo') and not shown_for('orpo_alpha', 'simpo')
    assert shown_for('sequence_len', 'orpo')

# --- validation --------------------------------------------------------------------------------------------------

def test_an_empty_form_names_what_is_missing():
    f = config_form()
    assert f.config is None
    assert [p.message for p in f.errors] == ['base_model: missing; it is required', 'datasets[0].path: missing; it is required']
    assert f.notes['base_model'].value == '<span style="color:#c0392b">error: base_model: missing; it is required</span>'
    assert 'invalid' in f.summary.value and '2 error(s)' in f.summary.value

def test_an_invalid_value_shows_its_message_next_to_the_field_and_clears():
    f = config_form(GOOD)
    f.fields['micro_batch_size'].value = '0'
    assert f.config is None
    assert [p.message for p in f.messages['micro_batch_size']] == ['micro_batch_size: got 0: Input should be greater than or equal to 1']
    assert 'micro_batch_size: got 0: Input should be greater than or equal to 1' in f.notes['micro_batch_size'].value
    f.fields['micro_batch_size'].value = 'two'
    assert f.config is None and 'micro_batch_size: got &#x27;two&#x27;' in f.notes['micro_batch_size'].value
    f.fields['micro_batch_size'].value = '4'
    assert f.config.micro_batch_size == 4 and f.notes['micro_batch_size'].value == '' and f.errors == []

def test_rule_messages_land_next_to_the_field_they_name():
    f = config_form(dict(GOOD, rl='kto'))
    f.fields['micro_batch_size'].value = '1'
    msg = ('micro_batch_size: 1 with rl: kto: KTO estimates its KL term from the other rows of the batch, so TRL needs '
           'at least 2. Set micro_batch_size: 2 or more.')
    assert [p.message for p in f.messages['micro_batch_size']] == [msg]
    f.fields['micro_batch_size'].value = ''
    f.fields['load_in_4bit'].value = True
    assert f.config is None and [p.rule for p in f.messages['load_in_4bit']] == ['quant-without-adapter']
    f.fields['adapter'].value = 'qlora'
    assert f.config is not None and f.config.load_in_4bit
    f.fields['datasets[0].type'].value = 'chatml.intell'
    assert [p.rule for p in f.messages.get('datasets[0].type', [])] == ['strategy-name']

def test_message_field_falls_back_to_the_rule_fields():
    from prefnb.config import Problem
    keys = {'sample_packing': 1, 'datasets': 1, 'datasets[0].type': 1}
    assert message_field(Problem('strategy-name', 'error', 'datasets[0].type: x'), keys) == 'datasets[0].type'
    assert message_field(Problem('kto-label', 'error', 'datasets[0] (p): rl: kto needs'), keys) == 'datasets'
    assert message_field(Problem('axolotl-key-unused', 'warning', 'ignored axolotl options: x'), keys) == ''

# --- buttons -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('path,rl', [('prefnb:toy-kto', 'kto'), ('prefnb:toy-orca', 'dpo')])
def test_recommend_picks_the_method_from_the_dataset_columns(path, rl):
    f = config_form(dict(base_model='prefnb:tiny-chatml', rl='orpo', datasets=[dict(path=path)]))
    f.buttons['Recommend'].click()
    assert f.selection.method == rl and f.fields['rl'].value == rl and f.config.rl == rl
    assert f.report_text.startswith(f'method: {rl}\n  because ')
    assert [k for k in f.visible() if k in sections()['method']] == METHOD_FIELDS[rl]

def test_recommend_reads_a_local_file(tmp_path):
    from prefnb.zoo import write_toy_file
    p = write_toy_file(tmp_path/'kto.jsonl', 'kto', 8)
    f = config_form(dict(base_model='prefnb:tiny-chatml', datasets=[dict(path=str(p), type='chatml.prompt_pairs')]))
    f.buttons['Recommend'].click()
    assert f.config.rl == 'kto' and 'columns: prompt, completion, label' in f.report_text

EXAMPLES = sorted((Path(__file__).resolve().parent.parent/'examples').glob('*.yml'))

@pytest.mark.parametrize('path', EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_fills_the_form_unchanged(path):
    with warnings.catch_warnings(action='ignore'): cfg = load_config(path)
    f = config_form(path)
    assert f.errors == [] and f.config.model_dump() == cfg.model_dump()
    assert [k for k in f.visible() if k in sections()['method']] == METHOD_FIELDS[cfg.rl]

def test_with_a_gpu_recommend_and_memory_use_its_memory(monkeypatch):
    import prefnb.widgets
    from prefnb.config import plan_for
    from prefnb.recommend import select_method
    monkeypatch.setattr(prefnb.widgets, 'gpu_gib', lambda: 14.56)
    f = config_form(dict(GOOD, rl='simpo'))
    f.buttons['Recommend'].click()
    want = select_method(['system', 'question', 'chosen', 'rejected'], model='prefnb:tiny-chatml', gpu=14.56)
    assert f.selection == want and f.config.rl == 'dpo'
    assert f.report_text.startswith(f'method: dpo\n  because {want.reasons[0]}\n') and want.reasons[0].startswith('DPO on 14.56 GiB GPU: full fine-tuning ~')
    f.buttons['Memory'].click()
    assert f.report_text == plan_for(f.config, 14.56).table() and 'fits' in f.report_text

def test_memory_shows_the_planner_estimate():
    from prefnb.config import plan_for
    f = config_form(dict(GOOD, adapter='lora'))
    f.buttons['Memory'].click()
    assert f.report_text.endswith(plan_for(f.config, 'T4').table())   # no GPU here: checked against a T4

def test_preview_shows_tokens_and_says_when_data_is_unavailable(monkeypatch):
    f = config_form(dict(GOOD, sequence_len=64))
    f.buttons['Preview data'].click()
    assert f.report_text.startswith('--- sample 0\nprompt (loss-masked): [<|im_start|>]')
    monkeypatch.setitem(sys.modules, 'prefnb.data', None)
    f.buttons['Preview data'].click()
    assert f.report_text.startswith('not available: ')

def test_yaml_is_saved_accepted_by_prefnb_check_and_round_trips(tmp_path, cli):
    f = config_form()
    f.fields['base_model'].value = 'prefnb:tiny-chatml'
    f.fields['datasets[0].path'].value = 'prefnb:toy-orca'
    f.fields['datasets[0].type'].value = 'chatml.intel'
    f.fields['rl'].value = 'simpo'
    f.fields['adapter'].value = 'lora'
    f.fields['simpo_gamma'].value = '0.8'
    f.fields['sequence_len'].value = '256'
    f.yaml_path.value = str(tmp_path/'sub'/'run.yml')
    f.buttons['YAML'].click()
    p = tmp_path/'sub'/'run.yml'
    assert yaml.safe_load(p.read_text()) == {'base_model': 'prefnb:tiny-chatml', 'rl': 'simpo', 'datasets': [
        {'path': 'prefnb:toy-orca', 'type': 'chatml.intel'}], 'simpo_gamma': 0.8, 'sequence_len': 256, 'adapter': 'lora'}
    assert f.report_text == f'# saved to {p}\n' + p.read_text()
    r = cli('check', p)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == f'{p}: valid (rl: simpo), 0 errors, 0 warnings'
    g = config_form(p)
    assert g.config.model_dump() == f.config.model_dump() and g.config.model_fields_set == f.config.model_fields_set
    assert g.values() == f.values()
    h = config_form(yaml_path=str(p))
    h.buttons['Load'].click()                                   # the Load button reads the file named in the box
    assert h.config == f.config and h.fields['simpo_gamma'].value == '0.8'
    assert h.report_text == f'loaded {p}: 6 option(s); the form is valid (rl: simpo)'

@pytest.mark.parametrize('over', [
    {}, dict(rl='kto', kto_undesirable_weight=1.33, micro_batch_size=4),
    dict(rl='dpo', dpo_loss_type=['sigmoid', 'sft'], dpo_loss_weights=[1.0, 0.5], dpo_use_weighting=True, bf16=True),
    dict(rl='orpo', orpo_alpha=0.2, chat_template='tokenizer_default', special_tokens={'pad_token': '<pad>'},
         test_datasets=[dict(path='prefnb:toy-orca', type='chatml.intel', split='test')], report_to=['tensorboard']),
    dict(datasets=GOOD['datasets'] + [dict(path='prefnb:toy-ultrafeedback', type='chatml.ultra')], adapter='qlora',
         load_in_4bit=True, trust_remote_code=True, gradient_checkpointing=False, learning_rate=1e-5, resume_from_checkpoint=True)])
def test_a_config_fills_the_form_and_comes_back_equal(over, tmp_path):
    with warnings.catch_warnings(action='ignore'): cfg = load_config({**GOOD, **over})
    for src in (cfg, cfg.model_dump(exclude_unset=True), cfg.to_yaml(tmp_path/'c.yml') and tmp_path/'c.yml'):
        f = config_form(src)
        assert f.errors == [], [p.message for p in f.errors]
        assert f.config.model_dump() == cfg.model_dump()
        assert f.config.model_fields_set == cfg.model_fields_set | {'rl'}   # the form always states the method, as to_yaml does

def test_the_older_dpo_beta_fills_rl_beta(tmp_path):
    (tmp_path/'c.yml').write_text('base_model: prefnb:tiny-chatml\ndpo_beta: 0.3\ndatasets:\n- path: prefnb:toy-orca\n  type: chatml.intel\n')
    f = config_form(tmp_path/'c.yml')
    assert f.fields['rl_beta'].value == '0.3' and f.config.rl_beta == 0.3 and f.config.dpo_beta is None and f.warnings == []

def test_options_the_form_has_no_field_for_are_listed_not_lost():
    f = config_form(dict(GOOD, gc_steps=True, lerning_rate=1e-6))
    assert f.ignored == ['gc_steps', 'lerning_rate'] and f.config is not None
    assert f.report_text.startswith('left out of the form: gc_steps, lerning_rate')
    assert config_form(GOOD).ignored == [] and config_form(GOOD).report_text == ''

def test_a_value_a_dropdown_cannot_show_is_a_user_error():
    from prefnb.core import UserError
    with pytest.raises(UserError, match=r"^config: adapter: got 'LoRA', expected one of null, lora, qlora; live_plots: got 'yes', expected one of true, false$"):
        config_form(dict(GOOD, adapter='LoRA', live_plots='yes'))

def test_a_missing_yaml_file_is_a_user_error():
    from prefnb.core import UserError
    with pytest.raises(UserError, match="config: no file '/no/such.yml'"): config_form('/no/such.yml')

def test_train_locks_the_form_and_unlocks_it_after_success_and_failure(monkeypatch, tmp_path):
    import prefnb.run
    f = config_form(dict(GOOD, output_dir=str(tmp_path/'run')))
    seen = []
    def fake(cfg, **kw):
        seen.append((cfg, all(w.disabled for w in [*f.fields.values(), *f.buttons.values(), f.yaml_path]), kw))
        if kw.get('boom'): raise RuntimeError('boom')
        return 'RUN'
    monkeypatch.setattr(prefnb.run, 'train', fake)
    f.buttons['Train'].click()
    assert seen == [(f.config, True, {'overwrite': False})] and f.result == 'RUN' and f.report_text == 'done: RUN'
    assert not any(w.disabled for w in f.fields.values()) and f.buttons['Train'].description == 'Train'
    assert f.train(boom=True) is None and f.report_text == 'training failed: boom'
    assert not any(w.disabled for w in [*f.fields.values(), *f.buttons.values()])

def test_slow_buttons_say_they_are_busy(monkeypatch):
    import prefnb.widgets
    f = config_form(GOOD)
    during = {}
    def slow(entry):
        b = f.buttons['Recommend']
        during.update(desc=b.description, disabled=b.disabled, icon=b.icon, report=f.report_text)
        return ['prompt', 'chosen', 'rejected']
    monkeypatch.setattr(prefnb.widgets, 'dataset_columns', slow)
    f.buttons['Recommend'].click()
    assert during == dict(desc='Recommend ...', disabled=True, icon='hourglass-half', report='reading the dataset and the GPU ...')
    b = f.buttons['Recommend']
    assert (b.description, b.disabled, b.icon) == ('Recommend', False, '') and f.report_text.startswith('method: dpo')
    monkeypatch.setattr(prefnb.widgets, 'gpu_gib', lambda: during.update(memory=(f.buttons['Memory'].disabled, f.report_text)))
    f.buttons['Memory'].click()
    assert during['memory'] == (True, 'estimating memory (reads the model config) ...') and not f.buttons['Memory'].disabled

def test_a_second_train_goes_to_a_new_folder_or_overwrites(monkeypatch, tmp_path):
    import prefnb.run
    run = tmp_path/'run'; run.mkdir(); (run/'metrics.jsonl').write_text('{}\n')     # a first run's folder
    calls = []
    monkeypatch.setattr(prefnb.run, 'train', lambda cfg, **kw: calls.append((cfg.output_dir, kw)) or 'RUN')
    f = config_form(dict(GOOD, output_dir=str(run)))
    f.buttons['Train'].click()
    assert calls[-1] == (str(tmp_path/'run-2'), {'overwrite': False}) and f.fields['output_dir'].value == str(tmp_path/'run-2')
    assert f.report_text == f'{run} already holds a run: training into {tmp_path/"run-2"} (choose "overwrite it" to reuse the folder)\ndone: RUN'
    (tmp_path/'run-2').mkdir(); assert free_run_dir(run) == tmp_path/'run-3'
    f.fields['output_dir'].value = str(run); f.on_existing.value = 'overwrite'
    f.buttons['Train'].click()
    assert calls[-1] == (str(run), {'overwrite': True}) and f.report_text == 'done: RUN'

def test_buttons_refuse_an_invalid_config_with_the_errors():
    f = config_form(dict(GOOD, micro_batch_size=0))
    for b in ('Memory', 'YAML', 'Train', 'Preview data'):
        f.buttons[b].click()
        assert f.report_text == ('error: the form has errors; fix them first:\n'
                                 '  - micro_batch_size: got 0: Input should be greater than or equal to 1'), b

def test_train_button_trains_the_tiny_model(tmp_path):
    f = config_form(dict(GOOD, max_steps=2, sequence_len=128, micro_batch_size=2, gradient_accumulation_steps=1,
                         output_dir=str(tmp_path/'run'), live_plots=False))
    f.buttons['Train'].click()
    assert f.report_text.startswith('done: RunResult('), f.report_text
    assert (tmp_path/'run'/'config.yml').exists() and (tmp_path/'run'/'metrics.jsonl').exists()
    assert load_config(tmp_path/'run'/'config.yml').model_dump() == f.config.model_dump()
    f.buttons['Train'].click()                                  # again: a new folder, not a failure
    assert f.report_text.split('\n')[-1].startswith(f"done: RunResult({tmp_path/'run-2'}"), f.report_text
    assert (tmp_path/'run-2'/'config.yml').exists()

# --- hygiene -----------------------------------------------------------------------------------------------------

def test_the_form_is_a_standard_widget():
    f = config_form(GOOD)
    assert isinstance(f, ConfigForm) and isinstance(f, W.VBox)
    assert all(type(w).__module__.startswith('ipywidgets') for w in f.fields.values())
