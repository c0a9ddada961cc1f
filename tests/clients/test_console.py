"""The web console in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, through WebDriver): a user with a console password made by
`aws iam create-login-profile` signs in, creates a repository, reads how to
push, creates an access key (its secret shown once), pushes with that key
through skopeo, sees the image, deletes the repository, signs out. A
read-only user cannot create by URL, by a replayed form or without the CSRF
token; a signed-out browser sees nothing. Screenshots under
`target/console/`."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import ACCOUNT, ROOT, Berth, aws, client, failure, ok, root_env  # noqa: F401

SHOTS = os.path.join(ROOT, "target", "console")


@pytest.fixture(scope="module")
def berth():
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    yield server
    server.stop()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not shutil.which("chromedriver"):
        pytest.fail("chromium-driver is missing; scripts/test.sh installs it")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    # Elements a click's navigation brings are waited for (slow machines).
    driver.implicitly_wait(10)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for_url(driver, suffix):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(lambda d: d.current_url.endswith(suffix))
    # The URL changes before the new document has loaded: wait for that too.
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def post_and_wait(driver, button=None, selector=None):
    """Clicks a form's button (or the one `selector` finds, found again if the
    page was still settling) and waits for the page it brings, even when that
    page has the same URL as this one (a form that posts back to its page)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for attempt in range(3):
        try:
            old = driver.find_element(By.TAG_NAME, "html")
            (driver.find_element(By.CSS_SELECTOR, selector) if selector else button).click()
            break
        except WebDriverException:
            if selector is None or attempt == 2:
                raise
            time.sleep(0.5)

    def gone(_):
        # Chromium reports a replaced document's node either as stale or as
        # "Node with given id does not belong to the document": both mean gone.
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(driver, 15).until(gone)
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def alert_text(driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]"))[0].text


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def make_user(berth, name, actions):
    iam = client(berth, "iam")
    iam.create_user(UserName=name)
    if actions:
        iam.put_user_policy(UserName=name, PolicyName="console", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    password = f"Correct-Horse-{name}-9"
    ok(aws(berth, "iam", "create-login-profile", "--user-name", name, "--password", password))
    return password


def sign_in(driver, berth, user, password):
    from selenium.webdriver.common.by import By

    driver.get(berth.url + "/console")
    assert driver.current_url.endswith("/console/sign-in")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form:first-of-type button[type=submit]").click()


def test_login_profiles_the_iam_way(berth):
    client(berth, "iam").create_user(UserName="alice")
    failure(aws(berth, "iam", "create-login-profile", "--user-name", "alice", "--password", "short"),
            "PasswordPolicyViolation")
    created = ok(aws(berth, "iam", "create-login-profile", "--user-name", "alice", "--password",
                     "Long-enough-1", "--password-reset-required"))
    assert created["LoginProfile"]["UserName"] == "alice" and created["LoginProfile"]["PasswordResetRequired"]
    failure(aws(berth, "iam", "create-login-profile", "--user-name", "alice", "--password", "Long-enough-1"),
            "EntityAlreadyExists")
    got = ok(aws(berth, "iam", "get-login-profile", "--user-name", "alice"))
    assert got["LoginProfile"]["PasswordResetRequired"] is True
    ok(aws(berth, "iam", "update-login-profile", "--user-name", "alice", "--no-password-reset-required"))
    assert ok(aws(berth, "iam", "get-login-profile", "--user-name", "alice"))["LoginProfile"]["PasswordResetRequired"] is False
    ok(aws(berth, "iam", "delete-login-profile", "--user-name", "alice"))
    failure(aws(berth, "iam", "get-login-profile", "--user-name", "alice"), "NoSuchEntity")
    failure(aws(berth, "iam", "get-login-profile", "--user-name", "nobody"), "NoSuchEntity")
    # A user changes their own password with their keys.
    ok(aws(berth, "iam", "create-login-profile", "--user-name", "alice", "--password", "Long-enough-1"))
    iam = client(berth, "iam")
    iam.put_user_policy(UserName="alice", PolicyName="self", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ChangePassword", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    failure(aws(berth, "iam", "change-password", "--old-password", "wrong-One-1", "--new-password", "New-password-2",
                env=env), "InvalidUserType")
    ok(aws(berth, "iam", "change-password", "--old-password", "Long-enough-1", "--new-password", "New-password-2",
           env=env))


def test_the_console_journey(berth, browser, tmp_path):
    from selenium.webdriver.common.by import By

    password = make_user(berth, "dev", ["ecr:*", "iam:ListAccessKeys", "iam:CreateAccessKey",
                                        "iam:UpdateAccessKey", "iam:DeleteAccessKey"])
    # Signed out: nothing but the sign-in page.
    browser.get(berth.url + "/console/identities")
    assert browser.current_url.endswith("/console/sign-in")
    shot(browser, "01-sign-in")
    # A wrong password is refused.
    sign_in(browser, berth, "dev", "not-the-password")
    assert "do not match" in alert_text(browser)

    sign_in(browser, berth, "dev", password)
    wait_for_url(browser, "/console")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Repositories"
    cookie = browser.get_cookie("berth_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    shot(browser, "02-repositories")

    browser.find_element(By.ID, "name").send_keys("hello-world-app")
    browser.find_element(By.CSS_SELECTOR, "form[action$=create-repository] button").click()
    wait_for_url(browser, "/console/repositories/hello-world-app")
    assert browser.find_element(By.TAG_NAME, "h1").text == "hello-world-app"
    how = browser.find_element(By.CSS_SELECTOR, "pre").text
    assert "aws ecr get-login-password" in how and f"docker push {berth.host}/hello-world-app:TAG" in how
    shot(browser, "03-repository-empty")
    browser.get(berth.url + "/console")
    assert "Active" in browser.find_element(By.TAG_NAME, "table").text

    # Connected identities: a new key, its secret shown once.
    browser.find_element(By.LINK_TEXT, "Connected identities").click()
    browser.find_element(By.CSS_SELECTOR, "form[action$=create-key] button").click()
    key_id = browser.find_element(By.ID, "new-key-id").text
    secret = browser.find_element(By.ID, "new-key-secret").text
    shot(browser, "04-new-key")
    browser.get(berth.url + "/console/identities")
    assert key_id in browser.page_source and secret not in browser.page_source

    # Push with that key (skopeo), and see the image.
    layout, m = oci_layout(tmp_path, b"hello from the console journey\n")
    pushed = skopeo_push(berth, layout, "hello-world-app:v1", key_id, secret)
    assert pushed.returncode == 0, pushed.stderr
    browser.get(berth.url + "/console/repositories/hello-world-app")
    row = browser.find_element(By.CSS_SELECTOR, "tr.image").text
    assert "v1" in row and m["digest"][:19] in row
    assert f"docker pull {berth.host}/hello-world-app@{m['digest']}" in browser.page_source
    shot(browser, "05-repository-image")
    # The image's own page: its layers, and where its scan stands.
    browser.find_element(By.CSS_SELECTOR, "tr.image a").click()
    wait_for_url(browser, f"?image={m['digest']}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.layer")) == 1
    assert browser.find_element(By.ID, "findings").text == "Vulnerabilities"
    shot(browser, "05b-image")
    browser.get(berth.url + "/console/repositories/hello-world-app")

    # Delete it (with its images), then sign out.
    browser.find_element(By.CSS_SELECTOR, "input[name=force]").click()
    browser.find_element(By.CSS_SELECTOR, "form[action$=delete-repository] button").click()
    wait_for_url(browser, "/console")
    assert "hello-world-app" not in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_url(browser, "/console/sign-in")
    browser.get(berth.url + "/console")
    assert browser.current_url.endswith("/console/sign-in")


def test_a_read_only_user_cannot_write_by_any_door(berth, browser):
    from selenium.webdriver.common.by import By

    password = make_user(berth, "viewer", ["ecr:DescribeRepositories", "ecr:DescribeImages"])
    sign_in(browser, berth, "viewer", password)
    wait_for_url(browser, "/console")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Repositories"
    # The form is there; the action is refused as the policies say.
    browser.find_element(By.ID, "name").send_keys("not-allowed")
    browser.find_element(By.CSS_SELECTOR, "form[action$=create-repository] button").click()
    assert "do not allow ecr:CreateRepository" in alert_text(browser)
    shot(browser, "06-refused")
    cookie = browser.get_cookie("berth_console")["value"]
    csrf = browser.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")

    def post(path, fields, with_cookie=True):
        data = urllib.parse.urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if with_cookie:
            headers["Cookie"] = f"berth_console={cookie}"
        req = urllib.request.Request(berth.url + path, data=data, headers=headers, method="POST")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    # Without the CSRF token, with a forged one, replayed signed out: refused.
    assert post("/console/actions/create-repository", {"name": "forged"})[0] == 403
    assert post("/console/actions/create-repository", {"name": "forged", "csrf": "x" * 43})[0] == 403
    assert post("/console/actions/create-repository", {"name": "forged", "csrf": csrf}, with_cookie=False)[0] == 303
    # With its own valid token, the policy still decides.
    status, body = post("/console/actions/create-repository", {"name": "forged", "csrf": csrf})
    assert status == 403 and "do not allow" in body
    failure(aws(berth, "ecr", "describe-repositories", "--repository-names", "forged"), "RepositoryNotFoundException")


def oci_layout(tmp_path, text):
    """A one-layer image in an OCI layout directory; (its path, its manifest's descriptor)."""
    import hashlib

    from test_scanning import layer

    layout = tmp_path / ("layout-" + os.urandom(4).hex())
    os.makedirs(layout / "blobs" / "sha256")

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / d).write_bytes(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       **put(layer({"hello.txt": text}))}]}).encode()
    m = put(manifest)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **m}]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layout, m


def skopeo_push(berth, layout, target, key_id, secret):
    return subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"{key_id}:{secret}",
                           f"oci:{layout}", f"docker://{berth.host}/{target}"],
                          capture_output=True, text=True, timeout=120)


def sign_in_with_key(driver, berth, key):
    from selenium.webdriver.common.by import By

    driver.get(berth.url + "/console/sign-in")
    driver.find_element(By.ID, "key").send_keys(key[0])
    driver.find_element(By.ID, "secret").send_keys(key[1])
    driver.find_elements(By.CSS_SELECTOR, "form button[type=submit]")[1].click()
    wait_for_url(driver, "/console")


def submit(driver, form_action, fields, selects=None):
    """Fills a form (by its action's end) and submits it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    form = driver.find_element(By.CSS_SELECTOR, f"form.card[action$='{form_action}']")
    for name, value in fields.items():
        form.find_element(By.NAME, name).send_keys(value)
    for name, value in (selects or {}).items():
        Select(form.find_element(By.NAME, name)).select_by_value(value)
    # The page the form brings may have the same URL: wait for it to replace this one.
    post_and_wait(driver, selector=f"form.card[action$='{form_action}'] button")


def test_projects_members_and_robots(berth, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from conftest import ROOT_KEY

    lead = make_user(berth, "lead", [])
    reader = make_user(berth, "reader", [])
    # The account's root makes the project and names its admin and a reader.
    sign_in_with_key(browser, berth, ROOT_KEY)
    browser.get(berth.url + "/console/projects")
    submit(browser, "create-project", {"project": "acp"})
    wait_for_url(browser, "/console/projects/acp")
    submit(browser, "set-member", {"user": "lead"}, {"right": "admin"})
    wait_for_url(browser, "/console/projects/acp")
    submit(browser, "set-member", {"user": "reader"}, {"right": "pull"})
    wait_for_url(browser, "/console/projects/acp")
    # The form posts back to the same URL: read the table once the new page is in.
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def members_text(d):
        return d.find_element(By.CSS_SELECTOR, "section[aria-labelledby=members] table").text

    WebDriverWait(browser, 15, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: "reader pull" in members_text(d))
    members = members_text(browser)
    assert "lead admin" in members and "reader pull" in members
    # Every decision reads as an ordinary policy document.
    policy = client(berth, "iam").get_group_policy(GroupName="acp-push", PolicyName="berth-project")
    assert "repository/acp/*" in json.dumps(policy["PolicyDocument"])
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_url(browser, "/console/sign-in")

    # The project's admin requests a repository and makes a robot for CI.
    sign_in(browser, berth, "lead", lead)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/projects")
    browser.find_element(By.LINK_TEXT, "acp").click()
    submit(browser, "request-repository", {"repository": "hello-world-app"})
    wait_for_url(browser, "/console/projects/acp")
    repos = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=repos] table").text
    assert "acp/hello-world-app" in repos and "Active" in repos
    submit(browser, "create-robot", {"robot": "ci"}, {"right": "push"})
    robot_id = browser.find_element(By.ID, "robot-key-id").text
    robot_secret = browser.find_element(By.ID, "robot-key-secret").text
    shot(browser, "07-project-robot")
    layout, m = oci_layout(tmp_path, b"pushed by the CI robot\n")
    pushed = skopeo_push(berth, layout, "acp/hello-world-app:v1", robot_id, robot_secret)
    assert pushed.returncode == 0, pushed.stderr
    elsewhere = skopeo_push(berth, layout, "other/app:v1", robot_id, robot_secret)
    assert elsewhere.returncode != 0
    env = {"AWS_ACCESS_KEY_ID": robot_id, "AWS_SECRET_ACCESS_KEY": robot_secret}
    got = ok(aws(berth, "ecr", "batch-get-image", "--repository-name", "acp/hello-world-app",
                 "--image-ids", "imageTag=v1", env=env))
    assert got["images"][0]["imageId"]["imageDigest"] == m["digest"]
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_url(browser, "/console/sign-in")

    # A reader sees the project but cannot make robots or add members.
    sign_in(browser, berth, "reader", reader)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/projects/acp")
    submit(browser, "create-robot", {"robot": "sneaky"}, {"right": "push"})
    assert "do not allow" in alert_text(browser)
    browser.get(berth.url + "/console/projects/acp")
    submit(browser, "set-member", {"user": "reader"}, {"right": "admin"})
    assert "do not allow" in alert_text(browser)
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_url(browser, "/console/sign-in")

    # The admin revokes the robot: its key stops working.
    sign_in(browser, berth, "lead", lead)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/projects/acp")
    post_and_wait(browser, selector="form[action$=revoke-robot] button")
    assert "No robots yet." in browser.page_source
    again = skopeo_push(berth, layout, "acp/hello-world-app:v2", robot_id, robot_secret)
    assert again.returncode != 0


def test_image_pages_page_through_a_repository(berth, browser):
    """More images than a page holds: 100 a page, a link to the next."""
    from selenium.webdriver.common.by import By

    from test_scanning import layer, push

    password = make_user(berth, "pager", ["ecr:*"])
    client(berth, "ecr").create_repository(repositoryName="many")
    digests = {push(berth, "many", f"v{n}", [layer({"n": str(n).encode()})]) for n in range(101)}
    sign_in(browser, berth, "pager", password)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/repositories/many")
    first = [a.get_attribute("href").split("?image=")[1] for a in browser.find_elements(By.CSS_SELECTOR, "tr.image a")]
    assert len(first) == 100
    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    wait_for_url(browser, f"?after={first[-1]}")
    rest = [a.get_attribute("href").split("?image=")[1] for a in browser.find_elements(By.CSS_SELECTOR, "tr.image a")]
    assert len(rest) == 1 and set(first) | set(rest) == digests
    assert not browser.find_elements(By.CSS_SELECTOR, "a[rel=next]")
    # An image nobody pushed is not found.
    browser.get(berth.url + "/console/repositories/many?image=sha256:" + "0" * 64)
    assert "No image" in browser.find_element(By.TAG_NAME, "main").text



def test_lifecycle_and_repository_policy_editors(berth, browser):
    """A repository's policies on its settings page: a lifecycle policy
    previewed (evaluated as enforcement would) before it is saved, a
    repository policy refused with IAM's reason, then saved; a reader sees
    them and no Save button."""
    from selenium.webdriver.common.by import By

    from test_scanning import layer, push

    password = make_user(berth, "keeper", ["ecr:*"])
    reader = make_user(berth, "peeker", ["ecr:Describe*", "ecr:Get*", "ecr:List*"])
    ecr = client(berth, "ecr")
    ecr.create_repository(repositoryName="kept")
    digests = [push(berth, "kept", f"v{n}", [layer({"k": str(n).encode()})]) for n in range(3)]
    sign_in(browser, berth, "keeper", password)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/repositories/kept")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Lifecycle and access policies").click()
    wait_for_url(browser, "?settings")
    rules = json.dumps({"rules": [{"rulePriority": 1, "description": "keep the newest image only",
                                   "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                                 "countNumber": 1},
                                   "action": {"type": "expire"}}]})
    box = browser.find_element(By.ID, "lifecycle-text")
    box.clear()
    box.send_keys(rules)
    post_and_wait(browser, selector="button[value=preview]")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.preview")
    assert len(rows) == 2 and all("expire" in r.text for r in rows)
    shot(browser, "07-lifecycle-preview")
    assert ecr.describe_images(repositoryName="kept")["imageDetails"]  # nothing happened yet
    browser.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait_for_url(browser, "?settings")
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="kept")["lifecyclePolicyText"]) == json.loads(rules)

    # A repository policy that IAM would refuse, then one it accepts.
    box = browser.find_element(By.ID, "policy-text")
    box.clear()
    box.send_keys('{"Version": "2012-10-17", "Statement": "nope"}')
    post_and_wait(browser, selector="form[action$=repository-policy] button")
    assert alert_text(browser)
    allow_pull = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "pull", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": ["ecr:BatchGetImage"]}]})
    box = browser.find_element(By.ID, "policy-text")
    box.clear()
    box.send_keys(allow_pull)
    browser.find_element(By.CSS_SELECTOR, "form[action$=repository-policy] button").click()
    wait_for_url(browser, "?settings")
    assert json.loads(ecr.get_repository_policy(repositoryName="kept")["policyText"]) == json.loads(allow_pull)
    assert len(digests) == 3

    # A reader sees both, and cannot save.
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_url(browser, "/console/sign-in")
    sign_in(browser, berth, "peeker", reader)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/repositories/kept?settings")
    assert "keep the newest image only" in browser.find_element(By.ID, "lifecycle-text").get_attribute("value")
    assert not browser.find_elements(By.CSS_SELECTOR, "button[value=save]")
    assert not browser.find_elements(By.CSS_SELECTOR, "form[action$=repository-policy] button")


def test_users_and_groups_page(berth, browser):
    """IAM administration in the console, by the same IAM actions: an admin
    creates a user and a group, adds one to the other, attaches an AWS managed
    policy, and deletes a user; a user without IAM rights is refused."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    password = make_user(berth, "iam-admin", ["iam:*"])
    outsider = make_user(berth, "no-iam", ["ecr:*"])
    sign_in(browser, berth, "iam-admin", password)
    wait_for_url(browser, "/console")
    browser.find_element(By.LINK_TEXT, "Users and groups").click()
    wait_for_url(browser, "/console/iam")
    browser.find_element(By.ID, "new-user").send_keys("carol")
    post_and_wait(browser, selector="form[action$=iam-create-user] button")
    browser.find_element(By.ID, "new-group").send_keys("builders")
    post_and_wait(browser, selector="form[action$=iam-create-group] button")
    Select(browser.find_element(By.ID, "member-user")).select_by_visible_text("carol")
    Select(browser.find_element(By.ID, "member-group")).select_by_visible_text("builders")
    post_and_wait(browser, selector="form[action$=iam-add-to-group] button")
    Select(browser.find_element(By.ID, "attach-user")).select_by_visible_text("carol")
    Select(browser.find_element(By.ID, "attach-policy")).select_by_visible_text("AmazonEC2ContainerRegistryReadOnly")
    post_and_wait(browser, selector="form[action$=iam-attach] button")
    iam = client(berth, "iam")
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="carol")["Groups"]] == ["builders"]
    assert [p["PolicyName"] for p in iam.list_attached_user_policies(UserName="carol")["AttachedPolicies"]] == [
        "AmazonEC2ContainerRegistryReadOnly"]
    row = [r for r in browser.find_elements(By.CSS_SELECTOR, "tr.user") if r.text.startswith("carol")][0]
    assert "builders" in row.text and "AmazonEC2ContainerRegistryReadOnly" in row.text
    shot(browser, "08-users-and-groups")
    # IAM refuses to delete a user still in a group, and says why.
    post_and_wait(browser, row.find_element(By.CSS_SELECTOR, "form[action$=iam-delete-user] button"))
    assert "Cannot delete entity" in alert_text(browser)
    iam.remove_user_from_group(GroupName="builders", UserName="carol")
    iam.detach_user_policy(UserName="carol", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
    browser.get(berth.url + "/console/iam")
    row = [r for r in browser.find_elements(By.CSS_SELECTOR, "tr.user") if r.text.startswith("carol")][0]
    post_and_wait(browser, row.find_element(By.CSS_SELECTOR, "form[action$=iam-delete-user] button"))
    assert "carol" not in [u["UserName"] for u in iam.list_users()["Users"]]

    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_url(browser, "/console/sign-in")
    sign_in(browser, berth, "no-iam", outsider)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/iam")
    assert "do not allow iam:ListUsers" in browser.find_element(By.TAG_NAME, "main").text


def set_text(driver, element_id, text):
    """Replaces a field's text (a policy document) at once."""
    from selenium.webdriver.common.by import By

    driver.execute_script("arguments[0].value = arguments[1];", driver.find_element(By.ID, element_id), text)


def test_policies_and_roles_editors(berth, browser):
    """Customer managed policies (create, a malformed one refused in place,
    edited as a new default version, deleting one still attached refused),
    a role made with its trust policy, managed and inline policies attached
    and written on its page, a user taken out of a group — each checked
    through the IAM API; a reader cannot write by a forged form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    iam = client(berth, "iam")
    password = make_user(berth, "policy-admin", ["iam:*"])
    reader = make_user(berth, "policy-reader", ["iam:Get*", "iam:List*"])
    sign_in(browser, berth, "policy-admin", password)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/iam")
    browser.find_element(By.LINK_TEXT, "Customer managed policies →").click()
    wait_for_url(browser, "/console/iam/policies")

    # A malformed document is refused where it was typed, and kept.
    browser.find_element(By.ID, "policy-name").send_keys("pull-only")
    set_text(browser, "policy-document", '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}')
    post_and_wait(browser, selector="form[action$=iam-create-policy] button")
    assert alert_text(browser)
    assert "Maybe" in browser.find_element(By.ID, "policy-document").get_attribute("value")
    pull = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:BatchGetImage"], "Resource": "*"}]}
    set_text(browser, "policy-document", json.dumps(pull))
    post_and_wait(browser, selector="form[action$=iam-create-policy] button")
    wait_for_url(browser, "/console/iam/policies")
    arn = f"arn:aws:iam::{ACCOUNT}:policy/pull-only"
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v1"
    browser.find_element(By.LINK_TEXT, "pull-only").click()
    wait_for_url(browser, "/console/iam/policies/pull-only")
    pull["Statement"][0]["Action"].append("ecr:GetDownloadUrlForLayer")
    set_text(browser, "edit-document", json.dumps(pull))
    post_and_wait(browser, selector="form[action$=iam-edit-policy] button")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v2")["PolicyVersion"]["Document"]
    assert (json.loads(got) if isinstance(got, str) else got) == pull
    assert "v2 (default)" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "09-policy")

    # A role, made with the trust policy the form offers.
    browser.get(berth.url + "/console/iam")
    browser.find_element(By.ID, "new-role").send_keys("ci-deployer")
    post_and_wait(browser, selector="form[action$=iam-create-role] button")
    trust = iam.get_role(RoleName="ci-deployer")["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(urllib.parse.unquote(trust)) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    browser.find_element(By.LINK_TEXT, "ci-deployer").click()
    wait_for_url(browser, "/console/iam/roles/ci-deployer")
    Select(browser.find_element(By.ID, "attach-managed")).select_by_value(arn)
    post_and_wait(browser, selector="form[action$=iam-attach-to] button")
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="ci-deployer")["AttachedPolicies"]] == [arn]
    browser.find_element(By.ID, "new-inline-name").send_keys("scan")
    scan = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:StartImageScan", "Resource": "*"}]}
    set_text(browser, "new-inline-document", json.dumps(scan))
    post_and_wait(browser, selector="form.card:not(.inline-policy)[action$=iam-put-inline] button")
    got = iam.get_role_policy(RoleName="ci-deployer", PolicyName="scan")["PolicyDocument"]
    assert (json.loads(urllib.parse.unquote(got)) if isinstance(got, str) else got) == scan
    # A trust policy that is not one is refused; a good one is saved.
    set_text(browser, "trust-document", '{"Version": "2012-10-17", "Statement": []}')
    post_and_wait(browser, selector="form[action$=iam-trust] button")
    assert alert_text(browser)
    trust["Statement"][0]["Principal"] = {"AWS": f"arn:aws:iam::{ACCOUNT}:user/policy-admin"}
    set_text(browser, "trust-document", json.dumps(trust))
    post_and_wait(browser, selector="form[action$=iam-trust] button")
    got = iam.get_role(RoleName="ci-deployer")["Role"]["AssumeRolePolicyDocument"]
    assert (json.loads(urllib.parse.unquote(got)) if isinstance(got, str) else got) == trust
    shot(browser, "10-role")

    # A policy still attached cannot be deleted; detached, it can.
    browser.get(berth.url + "/console/iam/policies/pull-only")
    post_and_wait(browser, selector="form[action$=iam-delete-policy] button")
    assert "attached" in alert_text(browser).lower()
    browser.get(berth.url + "/console/iam/roles/ci-deployer")
    post_and_wait(browser, selector="form[action$=iam-detach] button")
    assert iam.list_attached_role_policies(RoleName="ci-deployer")["AttachedPolicies"] == []
    post_and_wait(browser, selector="form[action$=iam-delete-inline] button")
    assert iam.list_role_policies(RoleName="ci-deployer")["PolicyNames"] == []
    browser.get(berth.url + "/console/iam/policies/pull-only")
    post_and_wait(browser, selector="form[action$=iam-delete-policy] button")
    wait_for_url(browser, "/console/iam/policies")
    assert "pull-only" not in [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]
    browser.get(berth.url + "/console/iam/roles/ci-deployer")
    post_and_wait(browser, selector="form[action$=iam-delete-role] button")
    wait_for_url(browser, "/console/iam")
    assert "ci-deployer" not in [r["RoleName"] for r in iam.list_roles()["Roles"]]

    # A user's page takes them out of a group.
    iam.create_user(UserName="dana")
    iam.create_group(GroupName="ops")
    iam.add_user_to_group(GroupName="ops", UserName="dana")
    browser.get(berth.url + "/console/iam/users/dana")
    assert "ops" in browser.find_element(By.CSS_SELECTOR, "li.member-of").text
    post_and_wait(browser, selector="form[action$=iam-remove-from-group] button")
    assert iam.list_groups_for_user(UserName="dana")["Groups"] == []

    # A reader sees the pages but cannot write, even by a forged form.
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_url(browser, "/console/sign-in")
    sign_in(browser, berth, "policy-reader", reader)
    wait_for_url(browser, "/console")
    browser.get(berth.url + "/console/iam/users/dana")
    assert browser.find_element(By.TAG_NAME, "h1").text == "user dana"
    browser.execute_script("""
        const f = document.querySelector("form[action$=iam-put-inline]:not(.inline-policy)");
        f.querySelector("[name=policy]").value = "sneaky";
        f.querySelector("[name=document]").value = arguments[0];
        f.submit();""", json.dumps(scan))
    assert "do not allow iam:PutUserPolicy" in alert_text(browser)
    assert iam.list_user_policies(UserName="dana")["PolicyNames"] == []
