"""facekit.args: argument types and checks name the argument; one spelling per flag, with hidden
aliases; the training prefix rules."""
import argparse
import os

import pytest

from facekit import args as cli
from facekit.args import UsageError
from facekit.prefix import Position, params_path, symbol_path


def parse(type_, text):
    parser = argparse.ArgumentParser(prog='prog')
    parser.add_argument('--value', type=type_)
    return parser.parse_args(['--value', text]).value


@pytest.mark.parametrize('type_, good, bad', [
    (cli.positive_float, [('0.01', 0.01), ('1e3', 1000.0)], ['0', '-1', 'nan', 'inf', 'x']),
    (cli.non_negative_float, [('0', 0.0), ('5e-4', 5e-4)], ['-1', 'nan', 'x']),
    (cli.probability, [('0', 0.0), ('0.5', 0.5), ('1', 1.0)], ['1.5', '-0.1', 'nan', 'x']),
    (cli.int_list, [('55,68,80', [55, 68, 80]), ('', []), (' 3 , 5', [3, 5])], ['1.5,2', 'a']),
    (cli.increasing_epochs, [('55,68,80', [55, 68, 80]), ('', [])], ['8,5', '0,3', '5,5']),
    (cli.probability_list(3), [('0.6,0.7,0.7', [0.6, 0.7, 0.7])], ['0.6,0.7', '0.6,0.7,0.7,0.1', '0.6,2,0.7']),
    (cli.gpu_id, [('0', 0), ('3', 3), ('-1', -1)], ['-2', '0.5', 'gpu']),
    (cli.int_at_least(12), [('12', 12)], ['11', '1.5', 'x']),
])
def test_argument_types(type_, good, bad, capsys):
    for text, value in good:
        assert parse(type_, text) == value
    for text in bad:
        with pytest.raises(SystemExit) as exit_info:
            parse(type_, text)
        assert exit_info.value.code == 2
        assert 'argument --value' in capsys.readouterr().err


def test_hyphenated_spellings_and_older_names_are_hidden_aliases(capsys):
    parser = cli.ArgumentParser(prog='prog')
    parser.add_argument('--begin_epoch', type=int, default=0)
    parser.add_argument('--output', aliases=['--out'])
    parser.add_argument('command', nargs='*')
    assert parser.parse_args(['--begin-epoch', '3', '--out', 'x.jpg']).begin_epoch == 3
    args = parser.parse_args(['--begin-epoch=4', '--out=y.jpg'])
    assert (args.begin_epoch, args.output) == (4, 'y.jpg')
    assert parser.parse_args(['--begin_epoch', '5']).begin_epoch == 5
    # After --, arguments are left alone (the worker command of tools/launch.py).
    assert parser.parse_args(['--', '--out', 'z']).command == ['--out', 'z']
    parser.print_help()
    shown = capsys.readouterr().out
    assert '--begin_epoch' in shown and '--begin-epoch' not in shown and '--out ' not in shown
    with pytest.raises(SystemExit):  # no abbreviations: an alias never shadows another flag
        parser.parse_args(['--begin', '3'])
    with pytest.raises(ValueError, match='already a flag'):
        parser.add_argument('--other', aliases=['--output'])


def test_folder_and_file_checks_name_the_flag(tmp_path):
    cli.check_writable_dir(str(tmp_path / 'new' / 'deeper'), '--output')  # creatable: fine
    cli.check_existing_dir(str(tmp_path), '--gt')
    (tmp_path / 'file').write_text('x')
    (tmp_path / 'm-symbol.json').touch()
    (tmp_path / 'm-0003.params').touch()
    cli.check_checkpoint(str(tmp_path / 'm'), 3)
    cli.check_existing_file(str(tmp_path / 'm-symbol.json'), '--pnet')
    cli.check_output_file(str(tmp_path / 'new' / 'out.json'), '--json')
    for call, message in (
            (lambda: cli.check_writable_dir(str(tmp_path / 'file' / 'sub'), '--output'),
             '--output: %s is not a folder' % (tmp_path / 'file')),
            (lambda: cli.check_existing_dir(str(tmp_path / 'missing'), '--gt'), '--gt: no such folder'),
            (lambda: cli.check_checkpoint(str(tmp_path / 'm'), 4),
             '--prefix: model file %s-0004.params does not exist' % (tmp_path / 'm')),
            (lambda: cli.check_existing_file(str(tmp_path), '--pnet'), '--pnet: no such file: %s' % tmp_path),
            (lambda: cli.check_output_file(str(tmp_path), '--json'), '--json: %s is a folder' % tmp_path)):
        with pytest.raises(UsageError) as error:
            call()
        assert str(error.value).startswith(message)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        with pytest.raises(UsageError, match='--prefix: cannot write to'):
            cli.check_writable_dir(str(locked / 'out'), '--prefix')


def test_an_output_never_replaces_an_input_and_an_existing_one_only_with_overwrite(tmp_path):
    image, notes = tmp_path / 'photo.jpg', tmp_path / 'notes.json'
    image.write_bytes(b'jpeg')
    notes.write_text('mine')
    (tmp_path / 'link.jpg').symlink_to(image)
    for overwrite in (None, False, True):
        with pytest.raises(UsageError, match='--json %s would replace the input %s' % (tmp_path / 'link.jpg', image)):
            cli.check_output_file(str(tmp_path / 'link.jpg'), '--json', [str(image)], overwrite)
    with pytest.raises(UsageError, match='--json: %s exists \\(pass --overwrite' % notes):
        cli.check_output_file(str(notes), '--json', [str(image)], overwrite=False)
    cli.check_output_file(str(notes), '--json', [str(image)], overwrite=True)
    cli.check_output_file(str(notes), '--json', [str(image)])  # None: the command's own output


def test_a_training_prefix_refuses_other_runs_checkpoints_unless_overwrite(tmp_path):
    prefix = str(tmp_path / 'mnet')
    cli.check_training_prefix(prefix, Position(0), overwrite=False)  # empty: fine
    for path in (symbol_path(prefix), params_path(prefix, 1), params_path(prefix, 2)):
        open(path, 'w').close()
    with pytest.raises(UsageError, match=r'--prefix %s holds checkpoints this run would mix with: .*mnet-0001\.params'
                                         % prefix):
        cli.check_training_prefix(prefix, Position(0), overwrite=False)
    cli.check_training_prefix(prefix, Position(0), overwrite=True)
    cli.check_training_prefix(prefix, Position(2), overwrite=False)  # resumes from the last one
    with pytest.raises(UsageError, match=r'mix with: .*mnet-0002\.params'):
        cli.check_training_prefix(prefix, Position(1), overwrite=False)
    with pytest.raises(UsageError, match=r'--begin_epoch 1 --begin_batch 5: no checkpoint .*mnet-0001-batch000005'):
        cli.check_training_prefix(prefix, Position(1, 5), overwrite=True)
    with pytest.raises(UsageError, match="--prefix '%s/' names a folder; .* e.g. %s/mnet" % (tmp_path, tmp_path)):
        cli.check_training_prefix(str(tmp_path) + '/', Position(0), overwrite=False, example='mnet')


def test_help_names_a_default_once_and_only_a_real_one():
    parser = cli.ArgumentParser(prog='p', formatter_class=cli.DefaultsHelpFormatter)
    parser.add_argument('--size', type=int, default=24, help='smallest face')
    parser.add_argument('--gpu', default=None, help='GPU id (default: GPU 0 if there is one)')
    parser.add_argument('--label', default=None, help='label file')
    text = ' '.join(parser.format_help().split())
    assert 'smallest face (default: 24)' in text
    assert text.count('(default:') == 2 and 'label file (default' not in text
