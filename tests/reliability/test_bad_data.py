"""Bad data in every supported file format: each bad-row kind names the dataset, the row, the column, what was found and
what was expected; `on_bad_rows: drop` counts instead; bad files (not UTF-8, empty, mislabelled, truncated) are named;
huge rows, mixed schemas and duplicates are handled and reported. Through `prefnb.data.prepare` (fast) and `prefnb train`."""
import json, shutil
import pytest
from prefnb.core import UserError
from prefnb import data as D
from prefnb.zoo import toy_rows, write_toy_file
from _reliability import FORMATS, write_rows, write_yaml, example, in_process, prefnb, assert_user_error, snapshot

FIX = 'Fix the data, or set on_bad_rows: drop to skip such rows (they are counted in the data report)'
G = dict(question='Q one', chosen='C one', rejected='R one')           # a good chatml.intel row
K = dict(prompt='P one', completion='C one', label=True)               # a good KTO row
MSG = dict(messages=[{'role': 'user', 'content': 'a'}], chosen='c', rejected='r')
ULTRA_TEXT = dict(prompt='P', chosen='C', rejected='R')                # text where ultra wants message lists

def cfg(path, typ, rl='dpo', **kw): return dict(rl=rl, sequence_len=256, seed=0, datasets=[dict(path=str(path), type=typ)], **kw)

def err(path, typ, rl='dpo', tok=None, **kw):
    with pytest.raises(UserError) as e: D.prepare(cfg(path, typ, rl, **kw), tok)
    return str(e.value)

# (id, rows, type, rl, formats, row, column and found text); a None found-text per format means the format cannot hold the case
ROW_CASES = [
    ('missing-column', [G, dict(question='Q', chosen='C')], 'chatml.intel', 'dpo', FORMATS, "row 1: column 'rejected': found None, expected a string"),
    ('none', [G, {**G, 'chosen': None}], 'chatml.intel', 'dpo', FORMATS, "row 1: column 'chosen': found None, expected a string"),
    ('empty-prompt', [G, {**G, 'question': ''}], 'chatml.intel', 'dpo', ('jsonl', 'json', 'parquet'), "row 1: column 'question': found str '', expected a non-empty string"),
    ('empty-string-csv', [G, {**G, 'rejected': ''}], 'chatml.intel', 'dpo', ('csv',), "row 1: column 'rejected': found None, expected a string"),
    ('list-for-text', [G, {**G, 'chosen': ['C']}], 'chatml.intel', 'dpo', ('jsonl', 'json'), "row 1: column 'chosen': found list ['C'], expected a string"),
    ('list-for-text-column', [{**G, 'chosen': ['C']}, {**G, 'chosen': ['D']}], 'chatml.intel', 'dpo', ('parquet',), "row 0: column 'chosen': found list ['C'], expected a string"),
    ('text-for-list', [ULTRA_TEXT, ULTRA_TEXT], 'chatml.ultra', 'dpo', FORMATS, "row 0: column 'chosen': found str 'C', expected a list of at least 2 messages {role, content}"),
    ('message-without-role', [MSG, {**MSG, 'messages': [{'role': None, 'content': 'a'}]}], 'chat_template.default', 'dpo', ('jsonl', 'json', 'parquet'),
     "row 1: column 'messages[0].role': found None, expected a role, one of ['system', 'user', 'assistant', 'tool']"),
    ('message-unknown-role', [MSG, {**MSG, 'messages': [{'role': 'robot', 'content': 'a'}]}], 'chat_template.default', 'dpo', ('jsonl', 'json', 'parquet'),
     "row 1: column 'messages[0].role': found str 'robot', expected one of ['system', 'user', 'assistant', 'tool'] (map other names with roles:)"),
    ('message-order', [MSG, {**MSG, 'messages': [{'role': 'assistant', 'content': 'a'}]}], 'chat_template.default', 'dpo', ('jsonl', 'json', 'parquet'),
     "row 1: column 'messages[0].role': found str 'assistant', expected an assistant turn after a user or tool turn"),
    ('messages-not-a-list', [MSG, {**MSG, 'messages': 7}], 'chat_template.default', 'dpo', ('jsonl', 'json'),
     "row 1: column 'messages': found int 7, expected a list of {role, content} messages"),
    ('kto-label-yes', [K, {**K, 'label': 'yes'}], 'chatml.prompt_pairs', 'kto', ('jsonl', 'json'),
     "row 1: column 'label': found str 'yes', expected a boolean true/false (not a string or a number)"),
    ('kto-label-1', [K, {**K, 'label': 1}], 'chatml.prompt_pairs', 'kto', ('jsonl', 'json'),
     "row 1: column 'label': found int 1, expected a boolean true/false (not a string or a number)"),
    ('kto-label-yes-column', [{**K, 'label': 'yes'}, {**K, 'label': 'no'}], 'chatml.prompt_pairs', 'kto', FORMATS,
     "row 0: column 'label': found str 'yes', expected a boolean true/false (not a string or a number)"),
    ('kto-label-1-column', [{**K, 'label': 1}, {**K, 'label': 0}], 'chatml.prompt_pairs', 'kto', FORMATS,
     "row 0: column 'label': found int 1, expected a boolean true/false (not a string or a number)"),
]
ROW_PARAMS = [pytest.param(rows, typ, rl, ext, msg, id=f'{name}-{ext}') for name, rows, typ, rl, exts, msg in ROW_CASES for ext in exts]

@pytest.mark.parametrize('rows,typ,rl,ext,msg', ROW_PARAMS)
def test_bad_row_is_named(rows, typ, rl, ext, msg, tmp_path, tok):
    p = write_rows(tmp_path/f'd.{ext}', rows)
    assert err(p, typ, rl, tok) == f'datasets[0] ({p}), {msg}. {FIX}'

@pytest.mark.parametrize('rows,typ,rl,ext,msg', ROW_PARAMS)
def test_on_bad_rows_drop_counts_them(rows, typ, rl, ext, msg, tmp_path, tok):
    good = {'chatml.intel': G, 'chatml.ultra': None, 'chat_template.default': MSG, 'chatml.prompt_pairs': K}[typ]
    if good is None: good = dict(prompt='P', chosen=[{'role': 'user', 'content': 'P'}, {'role': 'assistant', 'content': 'C'}],
                                 rejected=[{'role': 'user', 'content': 'P'}, {'role': 'assistant', 'content': 'R'}])
    bad = [r for r in rows if r is not good]
    if ext in ('parquet', 'csv') and any(r.get(k) is not None and type(r[k]) != type(good[k]) for r in bad for k in good):
        pytest.skip(f'a {ext} column holds one type: good rows cannot sit next to these bad ones (a missing or null value can, and is tested)')
    p = write_rows(tmp_path/f'd.{ext}', [good] * 3 + bad)
    prep = D.prepare(cfg(p, typ, rl, on_bad_rows='drop'), tok)
    d = prep.report['datasets'][0]
    assert (d['rows_in'], d['kept'], d['dropped']) == (3 + len(bad), 3, len(bad)), d
    column = msg.split("column '")[1].split("'")[0]
    assert list(d['dropped_reasons']) == [f"bad row: column {column!r} (expected {msg.split('expected ')[1]})"], d['dropped_reasons']
    assert len(prep.train) == (6 if rl == 'kto' and typ != 'chatml.prompt_pairs' else 3)
    json.dumps(prep.report)

def test_message_list_in_csv_is_not_silently_text(tmp_path, tok):
    p = write_rows(tmp_path/'m.csv', [{**MSG, 'messages': json.dumps(MSG['messages'])}] * 2)
    assert "row 0: column 'messages'" in err(p, 'chat_template.default', 'dpo', tok)

def test_kto_csv_with_true_false_labels_loads(tmp_path, tok):
    "The positive control for the CSV label cases: a real true/false column is read as booleans."
    p = write_rows(tmp_path/'k.csv', [K, {**K, 'label': False}])
    assert sorted(D.prepare(cfg(p, 'chatml.prompt_pairs', 'kto'), tok).train['label']) == [False, True]

# ---- bad files
def _non_utf8(ext, tmp_path):
    p = write_toy_file(tmp_path/f'u.{ext}', 'pairs', 3)
    b = p.read_bytes()
    if ext == 'jsonl': b += b'{"prompt": "caf\xe9", "chosen": "b", "rejected": "c"}\n'
    elif ext == 'json': b = b[:-1] + b', {"prompt": "caf\xe9", "chosen": "b", "rejected": "c"}]'
    else: b += b'caf\xe9,b,c\n'
    p.write_bytes(b); return p, b.index(b'\xe9')

@pytest.mark.parametrize('ext,where', [('jsonl', 'line 4 (row 3)'), ('csv', 'line 5 (row 3)'), ('json', 'line 1')])
def test_not_utf8(ext, where, tmp_path, tok):
    p, at = _non_utf8(ext, tmp_path)
    e = err(p, 'chatml.prompt_pairs', tok=tok)
    assert e.startswith(f'datasets[0] ({p}): {where}') and f"is not UTF-8: found bytes b'\\xe9" in e and f'at byte {at}; expected UTF-8 text. Re-save the file as UTF-8' in e, e

@pytest.mark.parametrize('ext', FORMATS)
@pytest.mark.parametrize('content', [b'', b'\n  \n'], ids=['empty', 'blank'])
def test_empty_file(ext, content, tmp_path, tok):
    p = tmp_path/f'e.{ext}'; p.write_bytes(content)
    assert err(p, 'chatml.prompt_pairs', tok=tok) == f"datasets[0] ({p}): the file is empty; expected {D.FORMATS['.' + ext]} rows"

@pytest.mark.parametrize('ext,real,start', [('jsonl', 'csv', "not JSON (it starts with 'prompt,chosen,reject'); expected one JSON object per line"),
                                            ('json', 'csv', "not JSON (it starts with 'prompt,chosen,reject'); expected a JSON list of objects"),
                                            ('parquet', 'jsonl', "not a parquet file (it starts with b'{\"prompt\": \"', parquet files start with b'PAR1')"),
                                            ('csv', 'parquet', "line 1 (row -1) is not UTF-8")])
def test_file_is_not_what_its_extension_says(ext, real, start, tmp_path, tok):
    src = write_toy_file(tmp_path/f'real.{real}', 'pairs', 3)
    p = tmp_path/f'liar.{ext}'; p.write_bytes(src.read_bytes())
    assert err(p, 'chatml.prompt_pairs', tok=tok).startswith(f'datasets[0] ({p}): {start}')

def test_csv_declared_as_json_by_ds_type(tmp_path, tok):
    p = tmp_path/'data.txt'; p.write_bytes(write_toy_file(tmp_path/'x.csv', 'pairs', 3).read_bytes())
    with pytest.raises(UserError) as e:
        D.prepare(dict(rl='dpo', datasets=[dict(path=str(p), type='chatml.prompt_pairs', ds_type='json')]), tok)
    assert str(e.value).startswith(f"datasets[0] ({p}): not JSON (it starts with 'prompt,chosen,reject')")
    with pytest.raises(UserError, match=r"unsupported file extension '.txt'; expected one of \['.csv', '.json', '.jsonl', '.parquet'\], or set ds_type"):
        D.prepare(dict(rl='dpo', datasets=[dict(path=str(p), type='chatml.prompt_pairs')]), tok)

@pytest.mark.parametrize('ext,expected', [
    ('jsonl', 'row 3 (line 4) is not valid JSON: Unterminated string starting at; expected one JSON object per line'),
    ('json', 'invalid JSON at line 1: '),
    ('csv', "row 3: column 'chosen': found None, expected a string"),   # the cut line is read as a short row
    ('parquet', 'could not read the file as parquet: ArrowInvalid: Parquet magic bytes not found in footer'),
])
def test_file_truncated_in_the_middle(ext, expected, tmp_path, tok):
    good = write_toy_file(tmp_path/f'g.{ext}', 'pairs', 6).read_bytes()
    p = tmp_path/f't.{ext}'; p.write_bytes(good[:len(good) // 2])
    assert err(p, 'chatml.prompt_pairs', tok=tok).startswith(f"datasets[0] ({p}){', ' if ext == 'csv' else ': '}{expected}")

def test_json_row_that_is_not_an_object(tmp_path, tok):
    p = tmp_path/'r.jsonl'; p.write_text(json.dumps(dict(prompt='a', chosen='b', rejected='c')) + '\n[1, 2]\n')
    assert err(p, 'chatml.prompt_pairs', tok=tok) == f"datasets[0] ({p}), row 1: column '(row)': found list [1, 2], expected a row (a JSON object / dict). {FIX}"

def test_json_file_with_no_rows(tmp_path, tok):
    p = tmp_path/'e.json'; p.write_text('[]')
    assert err(p, 'chatml.prompt_pairs', tok=tok).startswith(f'datasets[0] ({p}): ')

def test_csv_with_only_a_header(tmp_path, tok):
    p = tmp_path/'h.csv'; p.write_text('prompt,chosen,rejected\n')
    assert err(p, 'chatml.prompt_pairs', tok=tok).startswith(f'datasets[0] ({p}): could not read the file as csv')

# ---- huge rows, mixed schemas, duplicates
@pytest.fixture
def huge_file(tmp_path):
    rows = toy_rows('pairs', 3) + [dict(prompt='Tell me about the sea.', chosen='calm sea ' * 200_000, rejected='No.')]
    return write_rows(tmp_path/'huge.jsonl', rows)

def test_huge_single_row_drop_raise_truncate(huge_file, tok):
    d = D.prepare(cfg(huge_file, 'chatml.prompt_pairs'), tok).report['datasets'][0]
    assert (d['rows_in'], d['kept'], d['dropped'], d['dropped_reasons']) == (4, 3, 1, {'longer than sequence_len': 1})
    e = err(huge_file, 'chatml.prompt_pairs', tok=tok, excess_length_strategy='raise')
    assert e.startswith(f'datasets[0] ({huge_file}), row 3: ') and 'is more than sequence_len 256; raise sequence_len, or set excess_length_strategy: drop or truncate' in e
    p = D.prepare(cfg(huge_file, 'chatml.prompt_pairs', excess_length_strategy='truncate'), tok)
    d = p.report['datasets'][0]
    assert (d['kept'], d['truncated']) == (4, 1)
    L = D.token_lengths(tok, list(p.train['prompt']), [list(p.train['chosen']), list(p.train['rejected'])])
    assert max(a + max(b) for a, b in L) <= 256

def test_mixed_schemas_across_entries_name_the_entry(tmp_path, tok):
    a, b = write_toy_file(tmp_path/'a.jsonl', 'pairs', 3), write_toy_file(tmp_path/'b.parquet', 'orca', 3)
    c = dict(rl='dpo', datasets=[dict(path=str(a), type='chatml.prompt_pairs'), dict(path=str(b), type='chatml.prompt_pairs')])
    with pytest.raises(UserError) as e: D.prepare(c, tok)
    assert str(e.value) == f"datasets[1] ({b}), row 0: column 'prompt': found no such column, expected a non-empty string. {FIX}"
    c['datasets'][1]['type'] = 'chatml.intel'                               # each entry with its own strategy: fine
    assert D.prepare(c, tok).report['totals']['kept'] == 6

def test_kto_mixing_native_and_paired_files(tmp_path, tok):
    k, p = write_toy_file(tmp_path/'k.jsonl', 'kto', 4), write_toy_file(tmp_path/'p.csv', 'pairs', 3)
    prep = D.prepare(dict(rl='kto', datasets=[dict(path=str(k), type='chatml.prompt_pairs'), dict(path=str(p), type='chatml.prompt_pairs')]), tok)
    assert [d['unpaired'] for d in prep.report['datasets']] == [False, True] and len(prep.train) == 4 + 6

def test_mixed_schemas_in_one_folder_name_the_file(tmp_path, tok):
    write_toy_file(tmp_path/'f'/'a.jsonl', 'pairs', 3); write_toy_file(tmp_path/'f'/'b.jsonl', 'orca', 3)
    e = err(tmp_path/'f', 'chatml.prompt_pairs', tok=tok)
    assert 'b.jsonl' in e and 'question' in e, e

def test_duplicate_rows_are_kept(tmp_path, tok):
    rows = toy_rows('pairs', 4); p = write_rows(tmp_path/'dup.jsonl', rows + rows[:2] + rows[:1])
    prep = D.prepare(cfg(p, 'chatml.prompt_pairs'), tok)
    assert prep.report['datasets'][0]['kept'] == 7 and len(prep.train) == 7

def test_duplicate_rows_are_counted(tmp_path, tok):
    rows = toy_rows('pairs', 4); p = write_rows(tmp_path/'dup.jsonl', rows + rows[:2] + rows[:1])
    prep = D.prepare(cfg(p, 'chatml.prompt_pairs'), tok)
    d = prep.report['datasets'][0]
    assert (d['kept'], d['duplicates']) == (7, 3) and prep.report['totals']['duplicates'] == 3

# ---- through prefnb train: exit 2, the row named, no traceback; an existing run folder is never touched
def test_train_cli_bad_row(tmp_path):
    f = write_rows(tmp_path/'d.jsonl', [G, {**G, 'chosen': None}])
    c = write_yaml(tmp_path/'c.yml', example(datasets=[dict(path=str(f), type='chatml.intel')], output_dir=str(tmp_path/'out')))
    assert_user_error(prefnb('train', c), f"datasets[0] ({f}), row 1: column 'chosen': found None, expected a string")

@pytest.mark.parametrize('how', [
    pytest.param('resume'),
    pytest.param('overwrite'),
    'plain'])
def test_bad_data_never_touches_an_existing_run(how, finished_run, tmp_path):
    run = tmp_path/'run'; shutil.copytree(finished_run, run)
    before = snapshot(run)
    f = write_rows(tmp_path/'d.jsonl', [G, {**G, 'rejected': None}])
    over = dict(datasets=[dict(path=str(f), type='chatml.intel')], output_dir=str(run), max_steps=4, save_steps=2,
                save_total_limit=None, logging_steps=1)
    if how == 'resume': over['resume_from_checkpoint'] = 'auto'
    c = write_yaml(tmp_path/'c.yml', example(**over))
    rc, e = in_process('train', [c] + (['--overwrite'] if how == 'overwrite' else []))
    assert rc == 2, e
    if how == 'plain': assert 'already holds a run' in e
    else: assert f"datasets[0] ({f}), row 1: column 'rejected': found None, expected a string" in e
    assert snapshot(run) == before

# ---- empty responses: rows, not bad rows (as axolotl renders them: the end-of-turn alone); counted, warned when many
@pytest.mark.parametrize('ext', ['jsonl', 'json', 'parquet'])
def test_empty_response_is_a_row_counted_and_warned_when_many(ext, tmp_path, tok):
    p = write_rows(tmp_path/f'd.{ext}', [G, {**G, 'rejected': ''}, {**G, 'chosen': ''}])
    with pytest.warns(D.DataWarning, match=r'^datasets\[0\] \(.*\): 2 of 3 rows have an empty response'):
        prep = D.prepare(cfg(p, 'chatml.intel'), tok)
    d = prep.report['datasets'][0]
    assert (d['kept'], d['dropped'], d['empty_responses'], prep.report['totals']['empty_responses']) == (3, 0, 2, 2)
    assert sorted(prep.train['chosen']).count('<|im_end|>') == 1 and sorted(prep.train['rejected']).count('<|im_end|>') == 1
    assert '2 with an empty response (kept)' in D.format_report(prep.report)

def test_few_empty_responses_are_counted_without_a_warning(tmp_path, tok):
    import warnings
    rows = toy_rows('orca', 19) + [{**toy_rows('orca', 1)[0], 'chosen': ''}]
    with warnings.catch_warnings():
        warnings.simplefilter('error', D.DataWarning)
        prep = D.prepare(cfg(write_rows(tmp_path/'d.jsonl', rows), 'chatml.intel'), tok)
    assert prep.report['datasets'][0]['empty_responses'] == 1
