"""Controller-side helpers shared by the collection's action plugins."""

import json


def transfer_json(action, name: str, data) -> str:
    """Write ``data`` as JSON to ``name`` in the task's remote temporary directory; its path.

    For bulk inputs that hold secrets (accounts with HA1s, phones with passwords): as a
    module argument, 100,000 entries cost AnsibleModule minutes of deep copies and validation,
    and Ansible would log and echo them; a file costs one JSON parse. The directory is private
    to the connection user and removed right after the module ran. ``action`` is the running
    ActionBase, whose class must set ``TRANSFERS_FILES = True``.
    """
    shell = action._connection._shell
    if shell.tmpdir is None:
        action._make_tmp_path()
    path = shell.join_path(shell.tmpdir, name)
    action._transfer_data(path, json.dumps(data))
    action._fixup_perms2((shell.tmpdir, path))
    return path
