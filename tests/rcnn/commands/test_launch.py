"""tools/launch.py (``rcnn.commands.launch``): every role of a parameter-server job gets the scheduler's address."""
import os
import sys

from rcnn.commands import launch, retinaface_launch


class Finished:
    """A started process that has already exited with status 0."""
    returncode = 0

    def poll(self):
        return 0

    def wait(self, timeout=None):
        return 0


def test_every_role_gets_the_scheduler_address_and_workers_their_ids(monkeypatch):
    started = []
    monkeypatch.setattr(launch, 'start', lambda command, env, log: started.append((command, env)) or Finished())
    assert retinaface_launch(['-n', '2', '-s', '2', '--host', '10.0.0.1', '--port', '9123', '--', 'worker',
                              '--x']) == 0
    assert [env['DMLC_ROLE'] for _, env in started] == ['scheduler', 'server', 'server', 'worker', 'worker']
    assert {(env['DMLC_PS_ROOT_URI'], env['DMLC_PS_ROOT_PORT'], env['DMLC_NODE_HOST'], env['DMLC_NUM_SERVER'],
             env['DMLC_NUM_WORKER']) for _, env in started} == {('10.0.0.1', '9123', '10.0.0.1', '2', '2')}
    assert [(command, env['DMLC_WORKER_ID']) for command, env in started[3:]] == [
        (['worker', '--x'], '0'), (['worker', '--x'], '1')]
    assert all(command == launch.SERVE for command, _ in started[:3])


def test_without_a_port_a_free_one_is_chosen(monkeypatch):
    started = []
    monkeypatch.setattr(launch, 'start', lambda command, env, log: started.append(env) or Finished())
    monkeypatch.setattr(launch, 'free_port', lambda: 40123)
    assert retinaface_launch(['-n', '1', '--', 'worker']) == 0
    assert {env['DMLC_PS_ROOT_PORT'] for env in started} == {'40123'}
    assert {env['DMLC_PS_ROOT_URI'] for env in started} == {'127.0.0.1'}


def test_a_started_process_logs_to_its_file_and_the_launcher_keeps_no_descriptor(tmp_path):
    before = len(os.listdir('/proc/self/fd'))
    proc = launch.start([sys.executable, '-c', 'import sys; print("out"); print("err", file=sys.stderr)'],
                        dict(os.environ), str(tmp_path / 'worker0.log'))
    assert proc.wait(timeout=60) == 0
    assert len(os.listdir('/proc/self/fd')) == before
    assert sorted((tmp_path / 'worker0.log').read_text().split()) == ['err', 'out']


def test_the_worker_command_is_required(capsys):
    assert retinaface_launch(['-n', '2', '--']) == 2
    assert 'give the worker command after --' in capsys.readouterr().err
