"""Credentials never reach the log, at any level: berth at `trace` (every
crate's most verbose output, the HTTP stacks' included) through a session
that handles every kind of secret berth sees — SigV4 keys, STS session
credentials, ECR authorization tokens and the Basic headers made of them,
registry bearer tokens, new access keys, console passwords and session
cookies, Secrets Manager values, webhook signing secrets, robot
credentials — and then not one of them, nor its base64 form, is in the log."""

import base64
import json
import re
import urllib.parse
import urllib.request

from conftest import ACCOUNT, ROOT_KEY, Berth, client, root_env
from test_scanning import layer, push
from test_webhooks import berth_call


def test_no_credential_reaches_the_log_even_at_trace(tmp_path):
    log_path = tmp_path / "berth.log"
    with open(log_path, "w") as log:
        berth = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env(), "BERTH_LOG": "trace"},
                      extra=["--create-on-push"], log=log)
        secrets = [ROOT_KEY[1]]
        try:
            iam = client(berth, "iam")
            # A user, its access key, a console password.
            iam.create_user(UserName="carol")
            iam.attach_user_policy(UserName="carol",
                                   PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")
            key = iam.create_access_key(UserName="carol")["AccessKey"]
            secrets.append(key["SecretAccessKey"])
            password = "Correct-Horse-Battery-9"
            iam.create_login_profile(UserName="carol", Password=password)
            secrets.append(password)
            # STS session credentials, used.
            iam.create_role(RoleName="pusher", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}))
            iam.attach_role_policy(RoleName="pusher",
                                   PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
            iam.put_user_policy(UserName="carol", PolicyName="assume", PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
            sts = client(berth, "sts", key=(key["AccessKeyId"], key["SecretAccessKey"]))
            session = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/pusher",
                                      RoleSessionName="ci-session")["Credentials"]
            secrets += [session["SecretAccessKey"], session["SessionToken"]]
            as_role = client(berth, "ecr", key=(session["AccessKeyId"], session["SecretAccessKey"]),
                             token=session["SessionToken"])
            as_role.describe_repositories()
            # An ECR token, and the Basic header docker makes of it, used on /v2/.
            token = client(berth, "ecr", key=(key["AccessKeyId"], key["SecretAccessKey"])) \
                .get_authorization_token()["authorizationData"][0]["authorizationToken"]
            user, ecr_password = base64.b64decode(token).decode().split(":", 1)
            secrets += [token, ecr_password]
            push(berth, "logs/app", "v1", [layer({"a": b"x"})])
            basic = urllib.request.Request(f"{berth.url}/v2/logs/app/manifests/v1", method="GET", headers={
                "Authorization": f"Basic {token}",
                "Accept": "application/vnd.oci.image.manifest.v1+json"})
            assert urllib.request.urlopen(basic, timeout=30).status == 200
            # A registry bearer token from the /v2/ challenge's realm, used.
            try:
                urllib.request.urlopen(f"{berth.url}/v2/", timeout=30)
            except urllib.error.HTTPError as e:
                challenge = e.headers["WWW-Authenticate"]
            realm = re.search(r'realm="([^"]+)"', challenge)
            if challenge.lower().startswith("bearer") and realm:
                ask = urllib.request.Request(
                    realm.group(1) + "?service=x&scope=repository:logs/app:pull",
                    headers={"Authorization": f"Basic {token}"})
                body = json.loads(urllib.request.urlopen(ask, timeout=30).read())
                bearer = body.get("token") or body.get("access_token")
                secrets.append(bearer)
                use = urllib.request.Request(f"{berth.url}/v2/logs/app/tags/list",
                                             headers={"Authorization": f"Bearer {bearer}"})
                assert urllib.request.urlopen(use, timeout=30).status == 200
            # A Secrets Manager value, written and read back.
            value = json.dumps({"username": "u", "accessToken": "upstream-token-0f3b9c"})
            client(berth, "secretsmanager").create_secret(Name="upstream/creds", SecretString=value)
            client(berth, "secretsmanager").get_secret_value(SecretId="upstream/creds")
            secrets.append("upstream-token-0f3b9c")
            # A webhook's signing secret.
            hook_secret = "whsec-7d1e0a4b2c9f8e6d5a3b"
            status, _ = berth_call(berth, "PutWebhook", {
                "name": "h", "url": "http://127.0.0.1:9/hook", "signingSecret": hook_secret})
            assert status == 200
            secrets.append(hook_secret)
            # The console: a password sign-in, its session cookie, and a page.
            form = urllib.parse.urlencode({"user": "carol", "password": password}).encode()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            answer = opener.open(urllib.request.Request(f"{berth.url}/console/sign-in", data=form), timeout=30)
            assert answer.status == 200 and "sign-in" not in answer.url
            cookies = []
            for handler in opener.handlers:
                if isinstance(handler, urllib.request.HTTPCookieProcessor):
                    cookies = [c.value for c in handler.cookiejar]
            assert cookies
            secrets += cookies
            # A failed sign-in with a wrong (but secret-looking) password.
            wrong = "Wrong-Horse-Battery-0"
            try:
                urllib.request.urlopen(urllib.request.Request(
                    f"{berth.url}/console/sign-in",
                    data=urllib.parse.urlencode({"user": "carol", "password": wrong}).encode()), timeout=30)
                raise AssertionError("a wrong password signed in")
            except urllib.error.HTTPError as e:
                assert e.code == 401
            secrets.append(wrong)
            # A robot's credentials (berth admin prints the secret once).
            robot = berth.admin("create-robot", "ci-robot", "--push", "logs/*")
            secrets += re.findall(r"[A-Za-z0-9/+]{40}", robot)
            # A refused call with a wrong secret.
            try:
                client(berth, "ecr", key=(key["AccessKeyId"], "x" * 40)).describe_repositories()
            except Exception:
                pass
        finally:
            berth.stop()
    text = log_path.read_text(errors="replace")
    # (Nothing berth uses writes at TRACE on this path; DEBUG shows the
    # filter let everything through.)
    assert " DEBUG request{" in text and len(text) > 10_000, "berth did not log at trace level"
    for secret in secrets:
        assert secret, secrets
        forms = {secret, base64.b64encode(secret.encode()).decode(),
                 urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}
        for form in forms:
            assert form not in text, f"a credential ({secret[:4]}…) is in the log"
