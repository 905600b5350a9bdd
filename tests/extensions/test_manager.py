"""Installing, listing, updating and removing extensions with git, from local repositories (by path and by
file:// URL), and the refusals that keep it safe."""

from __future__ import annotations

import pytest

from sdui.extensions import manager
from sdui.extensions.manager import ExtensionAccessError, ExtensionError
from tests.extensions.conftest import commit_files, git

SCRIPT = "from modules import scripts\n"


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "data" / "extensions", tmp_path / "data" / "tmp"


def install(dirs, url, **kwargs):
    extensions_dir, tmp_dir = dirs
    installed = manager.list_extensions(extensions_dir, None)
    return manager.install(extensions_dir, tmp_dir, url, installed=installed, access_allowed=True, **kwargs)


@pytest.mark.parametrize("as_url", [False, True])
def test_install_from_a_path_or_a_file_url_lists_it_with_its_git_state(make_repo, dirs, as_url):
    repo = make_repo("sd-webui-hello.git" if as_url else "sd-webui-hello", {"scripts/hello.py": SCRIPT})
    url = repo.as_uri() if as_url else str(repo)
    target = install(dirs, url)
    assert target == dirs[0] / "sd-webui-hello" and (target / "scripts" / "hello.py").is_file()
    (ext,) = manager.list_extensions(dirs[0], None)
    assert (ext.name, ext.branch, ext.enabled, ext.builtin) == ("sd-webui-hello", "main", True, False)
    assert ext.commit == git(repo, "rev-parse", "HEAD") and len(ext.version) == 8 and ext.commit_date > 0
    assert ext.to_api()["commit_hash"] == ext.commit and ext.to_api()["remote"] == ext.remote
    assert list(dirs[1].iterdir()) == []  # the staging clone is gone


def test_branch_and_folder_name(make_repo, dirs):
    repo = make_repo("ext", {"a.txt": "main"})
    git(repo, "checkout", "-q", "-b", "dev")
    commit_files(repo, {"a.txt": "dev"})
    git(repo, "checkout", "-q", "main")
    target = install(dirs, str(repo), branch="dev", folder_name="my-ext")
    assert target.name == "my-ext" and (target / "a.txt").read_text() == "dev"
    assert manager.list_extensions(dirs[0], None)[0].branch == "dev"


@pytest.mark.parametrize("name", ["../escape", "a/b", "a\\b", "..", ".hidden", "-x"])
def test_folder_names_that_could_escape_are_refused(make_repo, dirs, name):
    repo = make_repo("ext", {"a.txt": "x"})
    with pytest.raises(ExtensionError, match="cannot be an extension folder name"):
        install(dirs, str(repo), folder_name=name)
    assert not dirs[0].exists() or list(dirs[0].iterdir()) == []


def test_an_existing_folder_or_the_same_remote_is_refused(make_repo, dirs):
    repo = make_repo("ext", {"a.txt": "x"})
    install(dirs, repo.as_uri())
    with pytest.raises(ExtensionError, match="folder 'ext' already exists"):
        install(dirs, repo.as_uri())
    with pytest.raises(ExtensionError, match="already installed, as 'ext'"):
        install(dirs, repo.as_uri() + "/", folder_name="other")


def test_a_failed_clone_leaves_nothing_and_says_why(dirs, tmp_path):
    with pytest.raises(ExtensionError, match="git clone failed: .*does not exist|git clone failed"):
        install(dirs, (tmp_path / "nowhere" / "repo.git").as_uri())
    assert not (dirs[0] / "repo").exists()
    assert list(dirs[1].iterdir()) == []


@pytest.mark.parametrize(
    "url",
    ["--upload-pack=touch /tmp/pwned", "ext::sh -c touch% /tmp/pwned", "", "ftp://example.com/x.git", "not a url"],
)
def test_urls_that_are_not_git_urls_are_refused(dirs, url):
    with pytest.raises(ExtensionError):
        install(dirs, url)


def test_everything_is_refused_when_the_server_is_not_local(make_repo, dirs):
    repo = make_repo("ext", {"a.txt": "x"})
    with pytest.raises(ExtensionAccessError, match="--enable-insecure-extension-access") as err:
        manager.install(dirs[0], dirs[1], str(repo), access_allowed=False)
    assert err.value.status_code == 403 and not (dirs[0] / "ext").exists()
    install(dirs, str(repo))
    (ext,) = manager.list_extensions(dirs[0], None)
    with pytest.raises(ExtensionAccessError):
        manager.update(ext, access_allowed=False)
    with pytest.raises(ExtensionAccessError):
        manager.remove(ext, access_allowed=False)
    assert ext.path.is_dir()


def test_check_for_updates_and_fast_forward_update(make_repo, dirs):
    repo = make_repo("ext", {"a.txt": "1"})
    install(dirs, repo.as_uri())
    (ext,) = manager.list_extensions(dirs[0], None)
    assert manager.check_for_updates(ext) is False
    new = commit_files(repo, {"a.txt": "2"})
    assert manager.check_for_updates(ext) is True
    manager.update(ext, access_allowed=True)
    (ext,) = manager.list_extensions(dirs[0], None)
    assert ext.commit == new and (ext.path / "a.txt").read_text() == "2"
    # a local commit and a remote one diverge: fast-forward only refuses, the local work stays
    commit_files(ext.path, {"b.txt": "mine"})
    commit_files(repo, {"a.txt": "3"})
    with pytest.raises(ExtensionError, match="git pull failed"):
        manager.update(ext, access_allowed=True)
    assert (ext.path / "b.txt").read_text() == "mine"


def test_remove(make_repo, dirs):
    install(dirs, str(make_repo("ext", {"a.txt": "x"})))
    (ext,) = manager.list_extensions(dirs[0], None)
    manager.remove(ext, access_allowed=True)
    assert manager.list_extensions(dirs[0], None) == []


def test_enabled_state_and_builtin_extensions(tmp_path):
    user, builtin = tmp_path / "extensions", tmp_path / "extensions-builtin"
    for folder, name in ((user, "Alpha"), (user, "beta"), (builtin, "Lora")):
        (folder / name).mkdir(parents=True)
    names = lambda found: [(e.name, e.builtin, e.enabled) for e in found]  # noqa: E731
    assert names(manager.list_extensions(user, builtin, ["alpha"])) == [
        ("Lora", True, True),
        ("Alpha", False, False),
        ("beta", False, True),
    ]
    assert [e.enabled for e in manager.list_extensions(user, builtin, [], "extra")] == [True, False, False]
    assert [e.enabled for e in manager.list_extensions(user, builtin, [], "all")] == [False, False, False]
    with pytest.raises(ExtensionError, match="built in"):
        manager.remove(manager.list_extensions(user, builtin)[0], access_allowed=True)
