"The data pipeline: sources, bad rows, length reports, KTO unpairing, BOS safety and lengths equal to TRL's own."
import json
from pathlib import Path
from types import SimpleNamespace
import pytest
from prefnb.core import UserError
from prefnb import data as D
from prefnb.zoo import toy_rows, write_toy_file, resolve_model

@pytest.fixture(scope='module')
def toks():
    from transformers import AutoTokenizer
    return {f: AutoTokenizer.from_pretrained(resolve_model(f'prefnb:tiny-{f}')) for f in ('chatml', 'llama')}

TEXT = ['prompt', 'chosen', 'rejected']
def cfg(entries, **kw): return {**dict(rl='dpo', sequence_len=512, seed=0), 'datasets': entries, **kw}

# ---- sources
@pytest.mark.parametrize('ext', ['jsonl', 'json', 'csv', 'parquet'])
def test_local_files(tmp_path, ext, toks):
    p = write_toy_file(tmp_path/f'd.{ext}', 'orca', 12)
    prep = D.prepare(cfg([dict(path=str(p), type='chatml.intel')]), toks['chatml'])
    assert prep.train.column_names == ['prompt', 'chosen', 'rejected', *D.IDS] and len(prep.train) == 12 and prep.eval is None
    r = toy_rows('orca', 12)
    assert sorted(prep.train['chosen']) == sorted(x['chosen'] + '<|im_end|>' for x in r)

def test_folder_data_files_and_in_memory(tmp_path, toks):
    import pandas as pd, datasets
    write_toy_file(tmp_path/'f'/'a.jsonl', 'pairs', 5); write_toy_file(tmp_path/'f'/'b.jsonl', 'pairs', 4, seed=1)
    ents = [dict(path=str(tmp_path/'f'), type='chatml.prompt_pairs'),
            dict(path=str(tmp_path/'f'), data_files='a.jsonl', type='chatml.prompt_pairs'),
            dict(path=toy_rows('pairs', 3), type='chatml.prompt_pairs'),
            dict(path=pd.DataFrame(toy_rows('pairs', 2)), type='chatml.prompt_pairs'),
            dict(path=datasets.Dataset.from_list(toy_rows('pairs', 1)), type='chatml.prompt_pairs')]
    prep = D.prepare(cfg(ents), toks['chatml'])
    assert [d['rows_in'] for d in prep.report['datasets']] == [9, 5, 3, 2, 1] and len(prep.train) == 20

def test_config_as_namespace_and_toy_names(toks):
    c = SimpleNamespace(rl='dpo', sequence_len=512, seed=0, datasets=[SimpleNamespace(path='prefnb:toy-orca', type='llama3.intel', split=None)],
                        val_set_size=None, test_datasets=None)
    assert len(D.prepare(c, toks['llama']).train) == 256

def test_concat_is_shuffled_with_the_seed(toks):
    c = cfg([dict(path=toy_rows('pairs', 20), type='chatml.prompt_pairs'), dict(path=toy_rows('pairs', 20, seed=5), type='chatml.prompt_pairs')])
    a, b = D.prepare(c, toks['chatml']).train, D.prepare(c, toks['chatml']).train
    assert list(a['prompt']) == list(b['prompt'])
    first = [D.S.render_prompt('chatml', r['prompt']) for r in toy_rows('pairs', 20)]
    assert list(a['prompt'])[:20] != first
    assert list(D.prepare({**c, 'seed': 1}, toks['chatml']).train['prompt']) != list(a['prompt'])

def test_val_set_size_and_test_datasets(toks):
    base = [dict(path='prefnb:toy-pairs', type='chatml.prompt_pairs')]
    p = D.prepare(cfg(base, val_set_size=0.1), toks['chatml'])
    assert (len(p.train), len(p.eval)) == (230, 26) and p.report['eval_rows'] == 26
    p = D.prepare(cfg(base, val_set_size=10), toks['chatml'])
    assert (len(p.train), len(p.eval)) == (246, 10)
    p = D.prepare(cfg(base, test_datasets=[dict(path='prefnb:toy-pairs', split='test', type='chatml.prompt_pairs')]), toks['chatml'])
    assert (len(p.train), len(p.eval)) == (256, 64) and p.report['datasets'][1]['split'] == 'test'
    assert not set(p.train['prompt'][:5]) & set() 
    with pytest.raises(UserError, match='val_set_size: 300 leaves no training rows out of 256 kept'):
        D.prepare(cfg(base, val_set_size=300), toks['chatml'])

def test_val_set_max_rows_caps_the_split_and_says_so(toks):
    "2% of UltraFeedback is ~1200 rows evaluated every eval_steps; the config's default keeps at most 256, the rest train."
    from prefnb.config import PrefConfig
    assert PrefConfig.model_fields['val_set_max_rows'].default == 256
    base = [dict(path='prefnb:toy-pairs', type='chatml.prompt_pairs')]
    p = D.prepare(cfg(base, val_set_size=0.5, val_set_max_rows=40), toks['chatml'])
    assert (len(p.train), len(p.eval)) == (216, 40) and p.report['eval_capped'] == dict(asked=128, kept=40)
    assert 'eval rows 40 (val_set_size asked for 128, capped at val_set_max_rows 40; the rest train)' in D.format_report(p.report)
    p = D.prepare(cfg(base, val_set_size=0.1, val_set_max_rows=40), toks['chatml'])
    assert (len(p.train), len(p.eval), p.report['eval_capped']) == (230, 26, None)      # under the cap: the fraction as asked
    assert len(D.prepare(cfg(base, val_set_size=0.5), toks['chatml']).eval) == 128      # under the default cap of 256
    assert len(D.prepare(cfg(base, val_set_size=0.5, val_set_max_rows=0), toks['chatml']).eval) == 128   # 0: no cap

# ---- bad rows: each names dataset, row, column, found and expected
GOOD = dict(question='Q', chosen='C', rejected='R')
@pytest.mark.parametrize('row,typ,msg', [
    ({'question': 'Q', 'chosen': 'C'}, 'chatml.intel', "row 1: column 'rejected': found no such column, expected a string"),
    ({**GOOD, 'chosen': None}, 'chatml.intel', "row 1: column 'chosen': found None, expected a string"),
    ({**GOOD, 'question': ''}, 'chatml.intel', "row 1: column 'question': found str '', expected a non-empty string"),
    ({**GOOD, 'chosen': ['C']}, 'chatml.intel', "row 1: column 'chosen': found list ['C'], expected a string"),
    ({'prompt': 'P', 'chosen': 'C', 'rejected': 'R'}, 'chatml.ultra', "row 1: column 'chosen': found str 'C', expected a list of at least 2 messages {role, content}"),
])
def test_bad_rows_error(row, typ, msg, toks):
    first = {'prompt': 'P', 'chosen': [{'role': 'user', 'content': 'P'}, {'role': 'assistant', 'content': 'C'}],
             'rejected': [{'role': 'user', 'content': 'P'}, {'role': 'assistant', 'content': 'R'}]} if typ == 'chatml.ultra' else GOOD
    with pytest.raises(UserError) as e: D.prepare(cfg([dict(path=[first, row], type=typ)]), toks['chatml'])
    assert str(e.value).startswith('datasets[0] (list), ' + msg), str(e.value)
    assert 'on_bad_rows: drop' in str(e.value)

@pytest.mark.parametrize('msgs,msg', [
    ([{'content': 'a'}], "row 1: column 'messages[0].role': found no such column, expected a role"),
    ([{'role': 'robot', 'content': 'a'}], "row 1: column 'messages[0].role': found str 'robot', expected one of ['system', 'user', 'assistant', 'tool']"),
    ([{'role': 'user', 'content': 'a'}, {'role': 'user', 'content': 'b'}], "row 1: column 'messages[1].role': found str 'user', expected a turn after 'user'"),
])
def test_malformed_messages_in_a_file(tmp_path, toks, msgs, msg):
    rows = [dict(messages=[{'role': 'user', 'content': 'a'}], chosen='c', rejected='r'), dict(messages=msgs, chosen='c', rejected='r')]
    f = tmp_path/'m.jsonl'; f.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    with pytest.raises(UserError) as e: D.prepare(cfg([dict(path=str(f), type='chat_template.default')]), toks['chatml'])
    assert str(e.value).startswith(f'datasets[0] ({f}), ' + msg), str(e.value)

@pytest.mark.parametrize('bad,found', [('yes', "str 'yes'"), (1, 'int 1')])
def test_kto_label_not_bool(bad, found, toks):
    rows = toy_rows('kto', 3); rows[2] = {**rows[2], 'label': bad}
    with pytest.raises(UserError, match=f"datasets\\[0\\] \\(list\\), row 2: column 'label': found {found}, expected a boolean true/false"):
        D.prepare(dict(rl='kto', datasets=[dict(path=rows, type='chatml.prompt_pairs')]), toks['chatml'])

def test_file_problems(tmp_path, toks):
    (tmp_path/'u.jsonl').write_bytes(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "\xff\xfe", "chosen": "b", "rejected": "c"}\n')
    (tmp_path/'e.jsonl').write_text('')
    (tmp_path/'c.json').write_text('prompt,chosen,rejected\na,b,c\n')
    (tmp_path/'t.parquet').write_text('{"prompt": "a"}\n')
    (tmp_path/'bad.csv').write_bytes(b'prompt,chosen,rejected\n"a,b\n')
    def err(name):
        with pytest.raises(UserError) as e: D.prepare(cfg([dict(path=str(tmp_path/name), type='chatml.prompt_pairs')]), toks['chatml'])
        return str(e.value)
    assert err('u.jsonl').startswith(f"datasets[0] ({tmp_path/'u.jsonl'}): line 2 (row 1) is not UTF-8: found bytes b'\\xff\\xfe\",' at byte 60; expected UTF-8 text")
    assert err('e.jsonl') == f"datasets[0] ({tmp_path/'e.jsonl'}): the file is empty; expected json rows"
    assert err('c.json').startswith(f"datasets[0] ({tmp_path/'c.json'}): not JSON (it starts with 'prompt,chosen,reject'); expected a JSON list of objects")
    assert err('t.parquet').startswith(f"datasets[0] ({tmp_path/'t.parquet'}): not a parquet file (it starts with b'{{\"prompt\": \"', parquet files start with b'PAR1')")
    assert err('bad.csv').startswith(f"datasets[0] ({tmp_path/'bad.csv'}): could not read the file as csv")

def test_mixed_types_in_jsonl_name_the_row(tmp_path, toks):
    rows = [dict(prompt='P', chosen='C', rejected='R'), dict(prompt=['P'], chosen='C', rejected='R')]
    f = tmp_path/'x.jsonl'; f.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    with pytest.raises(UserError, match=r"row 1: column 'prompt': found list \['P'\], expected a non-empty string"):
        D.prepare(cfg([dict(path=str(f), type='chatml.prompt_pairs')]), toks['chatml'])

def test_on_bad_rows_drop_counts(toks):
    rows = toy_rows('orca', 6) + [{'question': 'Q', 'chosen': None, 'rejected': 'R'}, {'question': 'Q', 'chosen': 'C'},
                                  {'question': 'Q', 'chosen': 'C', 'rejected': None}, {'question': 'Q', 'chosen': 'C', 'rejected': ''}]
    p = D.prepare(cfg([dict(path=rows, type='chatml.intel')], on_bad_rows='drop'), toks['chatml'])
    d = p.report['datasets'][0]
    assert (d['rows_in'], d['kept'], d['dropped'], d['empty_responses']) == (10, 7, 3, 1) and len(p.train) == 7   # an empty response is kept
    assert d['dropped_reasons'] == {"bad row: column 'chosen' (expected a string)": 1,
                                    "bad row: column 'rejected' (expected a string)": 2}
    json.dumps(p.report)

# ---- lengths
@pytest.mark.parametrize('mode', ['drop', 'truncate'])
@pytest.mark.parametrize('rl', ['dpo', 'simpo', 'kto'])
def test_report_adds_up(mode, rl, toks):
    typ = 'llama3.prompt_pairs'
    src = 'prefnb:toy-kto' if rl == 'kto' else 'prefnb:toy-pairs'
    p = D.prepare(dict(rl=rl, sequence_len=40, excess_length_strategy=mode, seed=0, datasets=[dict(path=src, type=typ)]), toks['llama'])
    d, t = p.report['datasets'][0], p.report['totals']
    assert d['rows_in'] == d['kept'] + d['dropped'] == 256 and t == {**t, 'rows_in': 256}
    assert len(p.train) == d['kept']
    assert d['dropped'] > 0 if mode == 'drop' else d['truncated'] > 0
    cols = ['completion'] if rl == 'kto' else ['chosen', 'rejected']
    L = D.token_lengths(toks['llama'], list(p.train['prompt']), [list(p.train[c]) for c in cols], rl)
    assert max(pl + max(rs) for pl, rs in L) <= 40

def test_truncate_drops_rows_whose_prompt_alone_is_too_long(toks):
    rows = [dict(prompt='Tell me about the sea. ' * 20, chosen='a', rejected='b'), dict(prompt='Hi', chosen='Hello! ' * 30, rejected='No.')]
    p = D.prepare(cfg([dict(path=rows, type='llama3.prompt_pairs')], sequence_len=32, excess_length_strategy='truncate'), toks['llama'])
    d = p.report['datasets'][0]
    assert (d['rows_in'], d['kept'], d['truncated'], d['dropped']) == (2, 1, 1, 1)
    assert d['dropped_reasons'] == {'prompt alone does not fit sequence_len': 1}

def test_raise_names_the_row(toks):
    rows = toy_rows('pairs', 3) + [dict(prompt='Hi', chosen='Hello! ' * 60, rejected='No.')]
    with pytest.raises(UserError, match=r"datasets\[0\] \(list\), row 3: \d+ tokens \(prompt \d+ \+ longest response \d+\) is more than sequence_len 64; raise sequence_len, or set excess_length_strategy: drop or truncate"):
        D.prepare(cfg([dict(path=rows, type='llama3.prompt_pairs')], sequence_len=64, excess_length_strategy='raise'), toks['llama'])
    p = D.prepare(cfg([dict(path=rows[:3], type='llama3.prompt_pairs')], sequence_len=64, excess_length_strategy='raise'), toks['llama'])
    assert p.report['totals']['rows_in'] == p.report['totals']['kept'] == 3

# ---- KTO
def test_kto_unpairs_paired_data_and_shuffles(toks):
    p = D.prepare(dict(rl='kto', seed=3, datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')]), toks['chatml'])
    assert p.train.column_names == ['prompt', 'completion', 'label'] and len(p.train) == 512
    labels = list(p.train['label'])
    assert sum(labels) == 256 and all(type(x) is bool for x in labels)
    assert labels[:256] != [True] * 256 and labels[:8] != [labels[0]] * 8
    assert p.report['datasets'][0]['unpaired'] and p.report['datasets'][0]['rows_out'] == 512
    assert p.train.features['label'].dtype == 'bool'

def test_kto_native_keeps_label(toks):
    rows = [dict(prompt='P', completion='X', label=True, extra='drop me'), dict(prompt='Q', completion='Y', label=False, extra='x')]
    p = D.prepare(dict(rl='kto', datasets=[dict(path=rows, type='chatml.prompt_pairs')]), toks['chatml'])
    assert p.train.column_names == ['prompt', 'completion', 'label'] and sorted(p.train['label']) == [False, True]

# ---- BOS safety and equality with TRL's own tokenization
def _trainer(kind, tok, ds, tmp_path):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-llama'))
    common = dict(output_dir=str(tmp_path/kind), use_cpu=True, bf16=False, report_to=[], per_device_train_batch_size=2, max_length=512)
    if kind == 'dpo':
        from trl import DPOConfig, DPOTrainer
        return DPOTrainer(model=model, ref_model=None, args=DPOConfig(**common), train_dataset=ds, processing_class=tok)
    if kind == 'kto':
        from trl import KTOConfig, KTOTrainer
        return KTOTrainer(model=model, ref_model=None, args=KTOConfig(**common), train_dataset=ds, processing_class=tok)
    if kind == 'simpo':
        from trl.experimental.cpo import CPOConfig, CPOTrainer
        return CPOTrainer(model=model, args=CPOConfig(**common, loss_type='simpo', cpo_alpha=0.0), train_dataset=ds, processing_class=tok)

def test_bos_safety_dpo_and_lengths_equal_trl(toks, tmp_path):
    tok = toks['llama']; bos = tok.bos_token_id
    rows = toy_rows('messages', 4)
    raw = D.S.load('chat_template.default', tokenizer=tok)(rows[0])
    assert raw['prompt'].startswith('<|begin_of_text|>')            # the template writes BOS ...
    assert tok(raw['prompt'])['input_ids'][:2] == [bos, bos]          # ... and the tokenizer adds another: the known failure
    p = D.prepare(cfg([dict(path=rows, type='chat_template.default')]), tok)
    assert p.report['datasets'][0]['bos_stripped'] == 4
    tr = _trainer('dpo', tok, p.train.select_columns(TEXT), tmp_path)   # TRL tokenizes the text itself
    ours = D.encode(tok, list(p.train['prompt']), [list(p.train['chosen']), list(p.train['rejected'])], 'dpo')
    for i, ex in enumerate(tr.train_dataset):
        assert ex['prompt_ids'][0] == bos and ex['prompt_ids'][1] != bos
        assert (ex['prompt_ids'], [ex['chosen_ids'], ex['rejected_ids']]) == ours[i]
        assert [ex[c] for c in D.IDS] == [p.train[i][c] for c in D.IDS]   # the ids prepare kept are TRL's

def test_bos_safety_kto(toks, tmp_path):
    tok = toks['llama']; bos = tok.bos_token_id
    rows = [dict(prompt='<|begin_of_text|>' + D.S.render_prompt('llama3', r['prompt']), completion=r['completion'] + '<|eot_id|>', label=r['label'])
            for r in toy_rows('kto', 4)]
    p = D.prepare(dict(rl='kto', datasets=[dict(path=rows, type='passthrough')]), tok)
    tr = _trainer('kto', tok, p.train, tmp_path)
    ours = D.encode(tok, list(p.train['prompt']), [list(p.train['completion'])], 'kto')
    for i, ex in enumerate(tr.train_dataset):
        assert ex['prompt_ids'][:2] != [bos, bos] and ex['prompt_ids'][0] == bos
        assert (ex['prompt_ids'], ex['completion_ids']) == (ours[i][0], ours[i][1][0])

def test_simpo_lengths_equal_cpo_trainer(toks, tmp_path):
    tok = toks['llama']
    p = D.prepare(dict(rl='simpo', datasets=[dict(path=toy_rows('messages', 4), type='chat_template.default')]), tok)
    tr = _trainer('simpo', tok, p.train, tmp_path)
    ours = D.token_lengths(tok, list(p.train['prompt']), [list(p.train['chosen']), list(p.train['rejected'])], 'simpo')
    for i, ex in enumerate(tr.train_dataset):
        assert ex['prompt_input_ids'].count(tok.bos_token_id) == 1
        n = len(ex['prompt_input_ids'])
        assert ex['chosen_input_ids'][:n] == ex['prompt_input_ids'] == ex['rejected_input_ids'][:n]
        assert (n, [len(ex['chosen_input_ids']) - n, len(ex['rejected_input_ids']) - n]) == ours[i]

# ---- preview and plots
def test_preview_html_and_text(toks):
    pv = D.preview(cfg([dict(path='prefnb:toy-orca', type='llama3.intel')], sequence_len=40, excess_length_strategy='truncate'), toks['llama'], n=2)
    t = pv.text(color=False)
    assert t.count('--- sample') == 2 and 'prompt (loss-masked): [<|begin_of_text|>][<|start_header_id|>]' in t and '[<|eot_id|>]' in t
    assert 'in 256, kept' in t and 'truncated' in t
    assert '\x1b[32m' in str(pv) and '\x1b[31m' in str(pv)
    h = pv._repr_html_()
    assert 'background:#c8f0c8' in h and 'background:#f6c8c8' in h and '&lt;|eot_id|&gt;' in h

def test_kto_preview_colours_desirable_and_undesirable_apart(toks):
    p = D.prepare(cfg([dict(path='prefnb:toy-kto', type='chatml.prompt_pairs')], rl='kto', sequence_len=128), toks['chatml'])
    pv = D.preview(p, toks['chatml'], n=12)
    labels = [s['label'] for s in pv.samples]
    assert True in labels and False in labels
    html_ = pv._repr_html_()
    for s, chunk in zip(pv.samples, html_.split('<p><b>sample ')[1:]):
        want, other = ('#c8f0c8', '#f6c8c8') if s['label'] else ('#f6c8c8', '#c8f0c8')
        comp = chunk.split('completion (')[1]
        assert comp.startswith('desirable' if s['label'] else 'undesirable') and f'background:{want}' in comp and other not in comp
    assert '\x1b[32m' in str(pv) and '\x1b[31m' in str(pv)

def test_preview_marks_truncation_point(toks):
    rows = [dict(prompt='Hi', chosen='Hello! ' * 30, rejected='No.')]
    pv = D.preview(rows, toks['llama'], n=1, rl='dpo'); pv.sequence_len = 20
    assert pv.text(color=False).count('✂') == 1

def test_plot_lengths(toks, tmp_path):
    p = D.prepare(cfg([dict(path='prefnb:toy-kto', type='chatml.prompt_pairs')], rl='kto', sequence_len=64), toks['chatml'])
    fig = D.plot_lengths(p, toks['chatml'], path=tmp_path/'l.png')
    assert [a.get_title().split(' (')[0] for a in fig.axes] == ['prompt', 'completion', 'prompt + longest'] and (tmp_path/'l.png').exists()

# ---- the CLI, through prefnb.config

def _yaml(tmp_path, **kw):
    import yaml
    c = dict(base_model='prefnb:tiny-llama', rl='dpo', sequence_len=48, excess_length_strategy='truncate',
             datasets=[dict(path='prefnb:toy-orca', type='llama3.intel')], output_dir=str(tmp_path/'out'), **kw)
    f = tmp_path/'c.yml'; f.write_text(yaml.safe_dump(c)); return f

def test_preview_cli(tmp_path, cli):
    r = cli('preview', _yaml(tmp_path), '-n', '2')
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('--- sample') == 2 and 'datasets[0] (prefnb:toy-orca) [train, llama3.intel]: in 256' in r.stdout
    r = cli('preview', _yaml(tmp_path), '--json')
    rep = json.loads(r.stdout); assert rep['totals']['rows_in'] == rep['totals']['kept'] + rep['totals']['dropped'] == 256

def test_preview_cli_bad_row_exits_2(tmp_path, cli):
    f = tmp_path/'d.jsonl'; f.write_text(json.dumps(dict(question='Q', chosen=None, rejected='R')) + '\n')
    import yaml
    c = dict(base_model='prefnb:tiny-chatml', rl='dpo', datasets=[dict(path=str(f), type='chatml.intel')], output_dir=str(tmp_path/'o'))
    (tmp_path/'c.yml').write_text(yaml.safe_dump(c))
    r = cli('preview', tmp_path/'c.yml')
    assert r.returncode == 2 and "row 0: column 'chosen': found None, expected a string" in r.stderr and 'Traceback' not in r.stderr

def test_prepare_with_load_config(tmp_path, toks):
    from prefnb.config import load_config
    c = load_config(dict(base_model='prefnb:tiny-llama', rl='kto', datasets=[dict(path='prefnb:toy-orca', type='llama3.intel')],
                         val_set_size=0.1, output_dir=str(tmp_path/'o')))
    p = D.prepare(c, toks['llama'])
    assert p.train.column_names == ['prompt', 'completion', 'label'] and p.eval is not None
    assert p.report['totals']['rows_in'] == 256

def test_preview_cli_help(cli):
    r = cli('preview', '--help')
    assert r.returncode == 0 and 'prefnb preview' in r.stdout and '-n N' in r.stdout

# ---- pre-tokenization (optional speed-up): identical ids, and the subclass trains on them
def test_pretokenize_identical_to_trl_and_trains(toks, tmp_path):
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig
    tok = toks['llama']
    p = D.prepare(cfg([dict(path=toy_rows('messages', 6), type='chat_template.default')]), tok)
    ref = _trainer('dpo', tok, p.train.select_columns(TEXT), tmp_path).train_dataset
    pt = D.pretokenize(p.train.select_columns(TEXT), tok, 'dpo')
    for c in D.IDS: assert list(pt[c]) == list(ref[c]), c
    cls = D.pretokenized_dpo_trainer()
    args = DPOConfig(output_dir=str(tmp_path/'pt'), use_cpu=True, bf16=False, report_to=[], per_device_train_batch_size=2,
                     max_length=512, max_steps=1, logging_steps=1, save_strategy='no')
    tr = cls(model=AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-llama')), args=args, train_dataset=pt, processing_class=tok)
    for c in D.IDS: assert list(tr.train_dataset[c]) == list(ref[c])
    tr.train()
    assert any('loss' in h for h in tr.state.log_history)
    # without ids it falls back to TRL's own preparation
    tr2 = cls(model=AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-llama')), args=args, train_dataset=p.train.select_columns(TEXT), processing_class=tok)
    assert list(tr2.train_dataset['prompt_ids']) == list(ref['prompt_ids'])

def test_chat_template_precedence_entry_then_config_then_tokenizer(toks):
    rows = [dict(messages=[{'role': 'user', 'content': 'hello'}], chosen='goodbye', rejected='no')]
    gemma = "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    e = dict(path=rows, type='chat_template.default')
    first = lambda c: D.prepare(c, toks['llama']).train[0]
    assert first(cfg([e]))['chosen'] == 'goodbye<|eot_id|>'                                        # the tokenizer's own
    assert first(cfg([e], chat_template_jinja=gemma))['chosen'] == 'goodbye<end_of_turn>'           # the config's
    assert first(cfg([{**e, 'chat_template': 'chatml'}], chat_template_jinja=gemma))['chosen'] == 'goodbye<|im_end|>'   # the entry's
    with pytest.raises(UserError, match="roles: set on a dataset entry whose type 'chatml.intel' does not read it"):
        D.prepare(cfg([dict(path=toy_rows('orca', 2), type='chatml.intel', roles={'user': ['human']})]), toks['chatml'])
