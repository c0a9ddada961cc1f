"""Identity and access with the real aws CLI, boto3 and skopeo: IAM users,
groups, roles and policies, STS credentials, repository policies."""

import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, ROOT_KEY, Berth, aws, basic_auth, client, failure, ok, root_env
from oci_layout import Layout, sample_files

REPO_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy"
AWS_POLICY = "arn:aws:iam::aws:policy"

# The classic ECR walkthrough's policy, with berth's region and account.
RANDSERVER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": [
            "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
            "ecr:GetRepositoryPolicy", "ecr:DescribeRepositories", "ecr:ListImages", "ecr:DescribeImages",
            "ecr:BatchGetImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
            "ecr:PutImage",
        ],
        "Resource": f"{REPO_ARN}/randserver",
    }],
}
LOGIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}],
}


@pytest.fixture
def berth():
    """berth with a known account, region and root key; repositories are created explicitly."""
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    yield server
    server.stop()


def as_key(key, token=None):
    env = {"AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1]}
    if token:
        env["AWS_SESSION_TOKEN"] = token
    return env


def new_user(berth, name, *policies, group=None):
    """A user with an access key and the given managed policies; returns the key."""
    ok(aws(berth, "iam", "create-user", "--user-name", name))
    created = ok(aws(berth, "iam", "create-access-key", "--user-name", name))["AccessKey"]
    for arn in policies:
        ok(aws(berth, "iam", "attach-user-policy", "--user-name", name, "--policy-arn", arn))
    if group:
        ok(aws(berth, "iam", "add-user-to-group", "--group-name", group, "--user-name", name))
    return created["AccessKeyId"], created["SecretAccessKey"]


def skopeo_login(berth, workdir, env, name):
    """`aws ecr get-login-password | skopeo login`, as the user of `env`; returns the auth file."""
    auth = os.path.join(workdir, f"{name}-auth.json")
    password = ok_text(aws(berth, "ecr", "get-login-password", env=env))
    result = subprocess.run(
        ["skopeo", "login", "--tls-verify=false", "--authfile", auth, "--username", "AWS",
         "--password-stdin", berth.host],
        input=password, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return auth


def ok_text(result):
    code, out, err = result
    assert code == 0, err
    return out


def copy(src, dst, auth):
    return subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--authfile", auth, src, dst],
        capture_output=True, text=True, timeout=120,
    )


def image_layout(workdir, seed="iam"):
    path = os.path.join(workdir, f"layout-{seed}")
    layout = Layout(path)
    image = layout.image("amd64", [sample_files(seed, 3, 10_000)])
    layout.tag(image, "v1")
    layout.save()
    return path


def test_the_ecr_walkthrough_with_a_group_policy(berth, workdir):
    ok(aws(berth, "iam", "create-group", "--group-name", "randserver-developers"))
    policy = ok(aws(berth, "iam", "create-policy", "--policy-name", "ecr-randserver",
                    "--policy-document", json.dumps(RANDSERVER_POLICY)))["Policy"]
    assert policy["Arn"] == f"{POLICY_ARN}/ecr-randserver"
    ok(aws(berth, "iam", "attach-group-policy", "--group-name", "randserver-developers",
           "--policy-arn", policy["Arn"]))
    johndoe = as_key(new_user(berth, "johndoe", group="randserver-developers"))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "randserver"))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "other"))

    assert ok(aws(berth, "sts", "get-caller-identity", env=johndoe))["Arn"] == \
        f"arn:aws:iam::{ACCOUNT}:user/johndoe"
    # GetAuthorizationToken is evaluated against "*": the repository ARN does not grant it.
    err = failure(aws(berth, "ecr", "get-login-password", env=johndoe), "AccessDeniedException")
    assert "ecr:GetAuthorizationToken on resource: *" in err
    ok(aws(berth, "iam", "put-group-policy", "--group-name", "randserver-developers",
           "--policy-name", "login", "--policy-document", json.dumps(LOGIN_POLICY)))

    auth = skopeo_login(berth, workdir, johndoe, "johndoe")
    layout = image_layout(workdir)
    pushed = copy(f"oci:{layout}:v1", f"docker://{berth.host}/randserver:v1", auth)
    assert pushed.returncode == 0, pushed.stderr
    back = copy(f"docker://{berth.host}/randserver:v1", f"oci:{workdir}/back:v1", auth)
    assert back.returncode == 0, back.stderr
    denied = copy(f"oci:{layout}:v1", f"docker://{berth.host}/other:v1", auth)
    assert denied.returncode != 0
    assert "403" in denied.stderr or "denied" in denied.stderr.lower(), denied.stderr

    images = ok(aws(berth, "ecr", "describe-images", "--repository-name", "randserver", env=johndoe))
    assert images["imageDetails"][0]["imageTags"] == ["v1"]
    failure(aws(berth, "ecr", "describe-images", "--repository-name", "other", env=johndoe),
            "AccessDeniedException")
    err = failure(aws(berth, "ecr", "delete-repository", "--repository-name", "randserver", "--force",
                      env=johndoe), "AccessDeniedException")
    assert f"User: arn:aws:iam::{ACCOUNT}:user/johndoe is not authorized to perform: " \
           f"ecr:DeleteRepository on resource: {REPO_ARN}/randserver" in err
    failure(aws(berth, "iam", "list-users", env=johndoe), "AccessDenied")


def test_read_only_pulls_and_power_user_cannot_delete(berth, workdir):
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "shared/app"))
    layout = image_layout(workdir, "shared")
    reader = as_key(new_user(berth, "reader", f"{AWS_POLICY}/AmazonEC2ContainerRegistryReadOnly"))
    power = as_key(new_user(berth, "power", f"{AWS_POLICY}/AmazonEC2ContainerRegistryPowerUser"))

    power_auth = skopeo_login(berth, workdir, power, "power")
    pushed = copy(f"oci:{layout}:v1", f"docker://{berth.host}/shared/app:v1", power_auth)
    assert pushed.returncode == 0, pushed.stderr
    failure(aws(berth, "ecr", "delete-repository", "--repository-name", "shared/app", "--force", env=power),
            "AccessDeniedException")
    failure(aws(berth, "ecr", "set-repository-policy", "--repository-name", "shared/app",
                "--policy-text", json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}]}), env=power),
            "AccessDeniedException")

    reader_auth = skopeo_login(berth, workdir, reader, "reader")
    pulled = copy(f"docker://{berth.host}/shared/app:v1", f"oci:{workdir}/pulled:v1", reader_auth)
    assert pulled.returncode == 0, pulled.stderr
    pushed = copy(f"oci:{layout}:v1", f"docker://{berth.host}/shared/app:v2", reader_auth)
    assert pushed.returncode != 0
    assert "403" in pushed.stderr or "denied" in pushed.stderr.lower(), pushed.stderr

    # The managed policies are there, under their real ARNs.
    got = ok(aws(berth, "iam", "get-policy", "--policy-arn", f"{AWS_POLICY}/AmazonEC2ContainerRegistryPullOnly"))
    assert got["Policy"]["PolicyName"] == "AmazonEC2ContainerRegistryPullOnly"
    attached = ok(aws(berth, "iam", "list-policies", "--scope", "AWS", "--only-attached"))["Policies"]
    assert sorted(p["PolicyName"] for p in attached) == [
        "AmazonEC2ContainerRegistryPowerUser", "AmazonEC2ContainerRegistryReadOnly"]


def test_a_role_session_narrowed_to_one_repository_expires(berth, workdir):
    for name in ("app-a", "app-b"):
        ok(aws(berth, "ecr", "create-repository", "--repository-name", name))
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/deployer"},
         "Action": "sts:AssumeRole"}]}
    ok(aws(berth, "iam", "create-role", "--role-name", "ci", "--assume-role-policy-document", json.dumps(trust)))
    ok(aws(berth, "iam", "attach-role-policy", "--role-name", "ci",
           "--policy-arn", f"{AWS_POLICY}/AmazonEC2ContainerRegistryFullAccess"))
    deployer = as_key(new_user(berth, "deployer"))
    stranger = as_key(new_user(berth, "stranger"))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/ci"
    failure(aws(berth, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "s1", env=stranger),
            "AccessDenied")
    failure(aws(berth, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "s1",
                "--duration-seconds", "7200", env=deployer), "ValidationError")

    session_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:*", "Resource": f"{REPO_ARN}/app-a"},
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}
    assumed = ok(aws(berth, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "deploy-7",
                     "--duration-seconds", "900", "--policy", json.dumps(session_policy), env=deployer))
    creds = assumed["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/deploy-7"
    session = as_key((creds["AccessKeyId"], creds["SecretAccessKey"]), creds["SessionToken"])
    assert ok(aws(berth, "sts", "get-caller-identity", env=session))["Arn"] == assumed["AssumedRoleUser"]["Arn"]
    ok(aws(berth, "ecr", "describe-repositories", "--repository-names", "app-a", env=session))
    failure(aws(berth, "ecr", "describe-repositories", "--repository-names", "app-b", env=session),
            "AccessDeniedException")
    # Without its session token the key is refused.
    failure(aws(berth, "ecr", "describe-repositories", "--repository-names", "app-a",
                env=as_key((creds["AccessKeyId"], creds["SecretAccessKey"]))), "UnrecognizedClientException")
    password = ok_text(aws(berth, "ecr", "get-login-password", env=session)).strip()

    # Fifteen minutes later (the clock is moved by ageing the credentials).
    berth.sql("UPDATE access_keys SET expires_at = 1000 WHERE expires_at IS NOT NULL")
    failure(aws(berth, "ecr", "describe-repositories", "--repository-names", "app-a", env=session),
            "ExpiredTokenException")
    failure(aws(berth, "sts", "get-caller-identity", env=session), "ExpiredToken")
    # The registry password issued from the session dies with it.
    req = urllib.request.Request(f"{berth.url}/v2/app-a/tags/list",
                                 headers={"Authorization": basic_auth("AWS", password)})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403
    assert "expired" in e.value.read().decode()


def test_per_user_repositories_from_one_policy(berth):
    ok(aws(berth, "iam", "create-group", "--group-name", "developers"))
    own = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:*", "Resource": f"{REPO_ARN}/${{aws:username}}/*"}]}
    ok(aws(berth, "iam", "put-group-policy", "--group-name", "developers", "--policy-name", "own-repos",
           "--policy-document", json.dumps(own)))
    alice = as_key(new_user(berth, "alice", group="developers"))
    bob = as_key(new_user(berth, "bob", group="developers"))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "alice/app", env=alice))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "bob/app", env=bob))
    failure(aws(berth, "ecr", "create-repository", "--repository-name", "bob/tool", env=alice),
            "AccessDeniedException")
    failure(aws(berth, "ecr", "delete-repository", "--repository-name", "alice/app", env=bob),
            "AccessDeniedException")
    ok(aws(berth, "ecr", "delete-repository", "--repository-name", "alice/app", env=alice))


def test_a_repository_policy_opens_anonymous_pull(berth):
    from test_ecr_api import push_image

    ok(aws(berth, "ecr", "create-repository", "--repository-name", "public/tools"))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "private/tools"))
    for repo in ("public/tools", "private/tools"):
        push_image(berth, repo, "v1", seed=repo)
    failure(aws(berth, "ecr", "get-repository-policy", "--repository-name", "public/tools"),
            "RepositoryPolicyNotFoundException")
    failure(aws(berth, "ecr", "set-repository-policy", "--repository-name", "public/tools",
                "--policy-text", '{"Statement": "nope"}'), "InvalidParameterException")
    public = {"Version": "2008-10-17", "Statement": [{
        "Sid": "Public", "Effect": "Allow", "Principal": "*",
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
                   "ecr:ListImages"]}]}
    set_ = ok(aws(berth, "ecr", "set-repository-policy", "--repository-name", "public/tools",
                  "--policy-text", json.dumps(public)))
    assert json.loads(set_["policyText"]) == public
    got = ok(aws(berth, "ecr", "get-repository-policy", "--repository-name", "public/tools"))
    assert got["registryId"] == ACCOUNT and json.loads(got["policyText"]) == public

    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with urllib.request.urlopen(urllib.request.Request(
            f"{berth.url}/v2/public/tools/manifests/v1", headers=accept)) as r:
        manifest = json.load(r)
    layer = manifest["layers"][0]["digest"]
    with urllib.request.urlopen(f"{berth.url}/v2/public/tools/blobs/{layer}") as r:
        assert r.read()
    with urllib.request.urlopen(f"{berth.url}/v2/public/tools/tags/list") as r:
        assert json.load(r)["tags"] == ["v1"]
    for url, method in [(f"{berth.url}/v2/private/tools/manifests/v1", "GET"),
                        (f"{berth.url}/v2/public/tools/manifests/v2", "PUT"),
                        (f"{berth.url}/v2/_catalog", "GET")]:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url, method=method, headers=accept, data=b"" if method == "PUT" else None))
        assert e.value.code == 401, url
        assert e.value.headers["WWW-Authenticate"].startswith("Basic realm=")

    deleted = ok(aws(berth, "ecr", "delete-repository-policy", "--repository-name", "public/tools"))
    assert json.loads(deleted["policyText"]) == public
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(f"{berth.url}/v2/public/tools/manifests/v1", headers=accept))
    assert e.value.code == 401


def test_repository_policy_grants_and_denies_named_users(berth):
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "team/svc"))
    carol = as_key(new_user(berth, "carol"))
    dave = as_key(new_user(berth, "dave", f"{AWS_POLICY}/AmazonEC2ContainerRegistryFullAccess"))
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/carol"},
         "Action": ["ecr:DescribeImages", "ecr:ListImages"]},
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/dave"},
         "Action": "ecr:DeleteRepository"}]}
    ok(aws(berth, "ecr", "set-repository-policy", "--repository-name", "team/svc",
           "--policy-text", json.dumps(policy)))
    # Carol has no identity policy: the repository policy alone lets her list.
    ok(aws(berth, "ecr", "list-images", "--repository-name", "team/svc", env=carol))
    failure(aws(berth, "ecr", "batch-get-image", "--repository-name", "team/svc", "--image-ids", "imageTag=v1",
                env=carol), "AccessDeniedException")
    # Dave may do everything in ECR, except what the repository denies him.
    err = failure(aws(berth, "ecr", "delete-repository", "--repository-name", "team/svc", env=dave),
                  "AccessDeniedException")
    assert "explicit deny" in err
    ok(aws(berth, "ecr", "list-images", "--repository-name", "team/svc", env=dave))


def test_registry_policy_cycle(berth):
    failure(aws(berth, "ecr", "get-registry-policy"), "RegistryPolicyNotFoundException")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Replicate", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
         "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
         "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/*"}]}
    put = ok(aws(berth, "ecr", "put-registry-policy", "--policy-text", json.dumps(policy)))
    assert put["registryId"] == ACCOUNT
    assert json.loads(ok(aws(berth, "ecr", "get-registry-policy"))["policyText"]) == policy
    ok(aws(berth, "ecr", "delete-registry-policy"))
    failure(aws(berth, "ecr", "get-registry-policy"), "RegistryPolicyNotFoundException")


def test_iam_errors_are_iams(berth):
    iam = client(berth, "iam")
    iam.create_user(UserName="Erin")
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName="erin")
    assert e.value.response["Error"]["Code"] == "EntityAlreadyExists"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName="nobody")
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"
    assert e.value.response["Error"]["Message"] == "The user with name nobody cannot be found."
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        iam.create_policy(PolicyName="broken", PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}')
    assert e.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    assert e.value.response["Error"]["Message"] == "Policy statement must contain resources."

    iam.create_access_key(UserName="Erin")
    iam.create_access_key(UserName="Erin")
    with pytest.raises(ClientError) as e:
        iam.create_access_key(UserName="Erin")
    assert e.value.response["Error"]["Code"] == "LimitExceeded"
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName="Erin")
    assert e.value.response["Error"]["Code"] == "DeleteConflict"
    for key in iam.list_access_keys(UserName="Erin")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="Erin", AccessKeyId=key["AccessKeyId"])
    iam.attach_user_policy(UserName="Erin", PolicyArn=f"{AWS_POLICY}/AmazonEC2ContainerRegistryReadOnly")
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName="Erin")
    assert e.value.response["Error"]["Message"] == "Cannot delete entity, must detach all policies first."
    iam.detach_user_policy(UserName="Erin", PolicyArn=f"{AWS_POLICY}/AmazonEC2ContainerRegistryReadOnly")
    iam.delete_user(UserName="Erin")

    policy = iam.create_policy(PolicyName="in-use", PolicyDocument=json.dumps(LOGIN_POLICY))["Policy"]
    iam.create_group(GroupName="g")
    iam.attach_group_policy(GroupName="g", PolicyArn=policy["Arn"])
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=policy["Arn"])
    assert e.value.response["Error"]["Code"] == "DeleteConflict"
    assert iam.get_policy(PolicyArn=policy["Arn"])["Policy"]["AttachmentCount"] == 1
    with pytest.raises(ClientError) as e:
        iam.attach_group_policy(GroupName="g", PolicyArn=f"{POLICY_ARN}/missing")
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName="x" * 65)
    assert e.value.response["Error"]["Code"] == "ValidationError"


def test_listing_pages_and_inline_policies_with_boto3(berth):
    iam = client(berth, "iam")
    for i in range(25):
        iam.create_user(UserName=f"user-{i:02}", Path="/robots/" if i % 2 else "/")
    pages = list(iam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 10}))
    assert [len(p["Users"]) for p in pages] == [10, 10, 5]
    names = [u["UserName"] for p in pages for u in p["Users"]]
    assert names == sorted(names) and len(set(names)) == 25
    robots = iam.list_users(PathPrefix="/robots/")["Users"]
    assert len(robots) == 12 and all(u["Arn"].endswith(f":user/robots/{u['UserName']}") for u in robots)

    iam.put_user_policy(UserName="user-00", PolicyName="login", PolicyDocument=json.dumps(LOGIN_POLICY))
    got = iam.get_user_policy(UserName="user-00", PolicyName="login")
    assert got["PolicyDocument"] == LOGIN_POLICY  # botocore URL-decodes and parses it
    assert iam.list_user_policies(UserName="user-00")["PolicyNames"] == ["login"]
    iam.delete_user_policy(UserName="user-00", PolicyName="login")
    with pytest.raises(ClientError) as e:
        iam.get_user_policy(UserName="user-00", PolicyName="login")
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"

    iam.create_group(GroupName="builders")
    iam.add_user_to_group(GroupName="builders", UserName="user-01")
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="user-01")["Groups"]] == ["builders"]
    assert [u["UserName"] for u in iam.get_group(GroupName="builders")["Users"]] == ["user-01"]
    with pytest.raises(ClientError) as e:
        iam.delete_group(GroupName="builders")
    assert e.value.response["Error"]["Code"] == "DeleteConflict"
    iam.remove_user_from_group(GroupName="builders", UserName="user-01")
    iam.delete_group(GroupName="builders")


def test_session_tokens_and_deactivated_keys(berth):
    key = new_user(berth, "temp", f"{AWS_POLICY}/AmazonEC2ContainerRegistryReadOnly")
    sts = client(berth, "sts", key)
    creds = sts.get_session_token(DurationSeconds=900)["Credentials"]
    session = client(berth, "ecr", (creds["AccessKeyId"], creds["SecretAccessKey"]), creds["SessionToken"])
    assert session.describe_repositories()["repositories"] == []
    with pytest.raises(ClientError) as e:
        session.create_repository(repositoryName="nope")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    again = client(berth, "sts", (creds["AccessKeyId"], creds["SecretAccessKey"]), creds["SessionToken"])
    with pytest.raises(ClientError) as e:
        again.get_session_token()
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as e:
        client(berth, "sts", key, validate=False).get_session_token(DurationSeconds=60)
    assert e.value.response["Error"]["Code"] == "ValidationError"

    iam = client(berth, "iam")
    iam.update_access_key(UserName="temp", AccessKeyId=key[0], Status="Inactive")
    assert iam.list_access_keys(UserName="temp")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    with pytest.raises(ClientError) as e:
        client(berth, "ecr", key).describe_repositories()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_robot_accounts_from_berth_admin(berth, workdir):
    for repo in ("team/app", "team/other", "base/debian"):
        ok(aws(berth, "ecr", "create-repository", "--repository-name", repo))
    layout = image_layout(workdir, "robot")
    root_auth = skopeo_login(berth, workdir, {}, "root")
    pushed = copy(f"oci:{layout}:v1", f"docker://{berth.host}/base/debian:v1", root_auth)
    assert pushed.returncode == 0, pushed.stderr

    out = berth.admin("create-robot", "ci-app", "--push", "team/app", "--pull", "base/*")
    fields = dict(line.split(" = ") for line in out.splitlines() if " = " in line)
    robot = as_key((fields["aws_access_key_id"], fields["aws_secret_access_key"]))
    assert fields["region"] == REGION
    assert ok(aws(berth, "sts", "get-caller-identity", env=robot))["Arn"] == \
        f"arn:aws:iam::{ACCOUNT}:user/robots/ci-app"
    auth = skopeo_login(berth, workdir, robot, "robot")
    assert copy(f"oci:{layout}:v1", f"docker://{berth.host}/team/app:v1", auth).returncode == 0
    denied = copy(f"oci:{layout}:v1", f"docker://{berth.host}/team/other:v1", auth)
    assert denied.returncode != 0
    pulled = copy(f"docker://{berth.host}/base/debian:v1", f"oci:{workdir}/base:v1", auth)
    assert pulled.returncode == 0, pulled.stderr
    denied = copy(f"oci:{layout}:v1", f"docker://{berth.host}/base/debian:v2", auth)
    assert denied.returncode != 0
    failure(aws(berth, "ecr", "delete-repository", "--repository-name", "team/app", "--force", env=robot),
            "AccessDeniedException")

    out = berth.admin("create-user", "viewer", "--policy-arn", f"{AWS_POLICY}/AmazonEC2ContainerRegistryReadOnly")
    fields = dict(line.split(" = ") for line in out.splitlines() if " = " in line)
    viewer = as_key((fields["aws_access_key_id"], fields["aws_secret_access_key"]))
    repos = ok(aws(berth, "ecr", "describe-repositories", env=viewer))["repositories"]
    assert len(repos) == 3
    failure(aws(berth, "ecr", "create-repository", "--repository-name", "xy", env=viewer), "AccessDeniedException")


def test_policy_versions_tags_and_attribute_based_access(berth):
    iam = client(berth, "iam")
    read_a = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": f"{REPO_ARN}/team-a/*"}]}
    policy = iam.create_policy(PolicyName="readers", PolicyDocument=json.dumps(read_a))["Policy"]
    assert policy["DefaultVersionId"] == "v1"
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "team-a/app"))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "team-b/app"))
    reader = as_key(new_user(berth, "reader", policy["Arn"]))
    ok(aws(berth, "ecr", "describe-repositories", "--repository-names", "team-a/app", env=reader))
    failure(aws(berth, "ecr", "describe-repositories", "--repository-names", "team-b/app", env=reader),
            "AccessDeniedException")

    # A new default version changes what the attached policy allows.
    read_b = json.loads(json.dumps(read_a))
    read_b["Statement"][0]["Resource"] = f"{REPO_ARN}/team-b/*"
    v2 = iam.create_policy_version(PolicyArn=policy["Arn"], PolicyDocument=json.dumps(read_b),
                                   SetAsDefault=True)["PolicyVersion"]
    assert v2 == {"VersionId": "v2", "IsDefaultVersion": True, "CreateDate": v2["CreateDate"]}
    ok(aws(berth, "ecr", "describe-repositories", "--repository-names", "team-b/app", env=reader))
    failure(aws(berth, "ecr", "describe-repositories", "--repository-names", "team-a/app", env=reader),
            "AccessDeniedException")
    versions = iam.list_policy_versions(PolicyArn=policy["Arn"])["Versions"]
    assert [(v["VersionId"], v["IsDefaultVersion"]) for v in versions] == [("v2", True), ("v1", False)]
    assert iam.get_policy_version(PolicyArn=policy["Arn"], VersionId="v1")["PolicyVersion"]["Document"] == read_a
    with pytest.raises(ClientError) as e:
        iam.delete_policy_version(PolicyArn=policy["Arn"], VersionId="v2")
    assert e.value.response["Error"]["Code"] == "DeleteConflict"
    iam.set_default_policy_version(PolicyArn=policy["Arn"], VersionId="v1")
    ok(aws(berth, "ecr", "describe-repositories", "--repository-names", "team-a/app", env=reader))
    for i in range(3):
        iam.create_policy_version(PolicyArn=policy["Arn"], PolicyDocument=json.dumps(read_a))
    with pytest.raises(ClientError) as e:
        iam.create_policy_version(PolicyArn=policy["Arn"], PolicyDocument=json.dumps(read_a))
    assert e.value.response["Error"]["Code"] == "LimitExceeded"
    entities = iam.list_entities_for_policy(PolicyArn=policy["Arn"])
    assert [u["UserName"] for u in entities["PolicyUsers"]] == ["reader"]
    iam.detach_user_policy(UserName="reader", PolicyArn=policy["Arn"])
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=policy["Arn"])
    assert e.value.response["Error"]["Code"] == "DeleteConflict"  # versions first, as on IAM
    for v in iam.list_policy_versions(PolicyArn=policy["Arn"])["Versions"]:
        if not v["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=policy["Arn"], VersionId=v["VersionId"])
    iam.delete_policy(PolicyArn=policy["Arn"])

    # Tags on the user decide through aws:PrincipalTag, the repository's through aws:ResourceTag.
    ecr = client(berth, "ecr")
    ecr.tag_resource(resourceArn=f"{REPO_ARN}/team-b/app", tags=[{"Key": "team", "Value": "b"}])
    abac = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "ecr:DescribeImages", "Resource": "*",
        "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}}]}
    iam.put_user_policy(UserName="reader", PolicyName="abac", PolicyDocument=json.dumps(abac))
    failure(aws(berth, "ecr", "describe-images", "--repository-name", "team-b/app", env=reader),
            "AccessDeniedException")
    iam.tag_user(UserName="reader", Tags=[{"Key": "team", "Value": "b"}])
    assert iam.list_user_tags(UserName="reader")["Tags"] == [{"Key": "team", "Value": "b"}]
    ok(aws(berth, "ecr", "describe-images", "--repository-name", "team-b/app", env=reader))
    iam.untag_user(UserName="reader", TagKeys=["team"])
    assert iam.list_user_tags(UserName="reader")["Tags"] == []
    failure(aws(berth, "ecr", "describe-images", "--repository-name", "team-b/app", env=reader),
            "AccessDeniedException")


def test_create_on_push_needs_the_right_to_create(workdir):
    server = Berth(extra=["--create-on-push"], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        layout = image_layout(workdir, "create")
        power = as_key(new_user(server, "power", f"{AWS_POLICY}/AmazonEC2ContainerRegistryPowerUser"))
        full = as_key(new_user(server, "full", f"{AWS_POLICY}/AmazonEC2ContainerRegistryFullAccess"))
        auth = skopeo_login(server, workdir, power, "power")
        denied = copy(f"oci:{layout}:v1", f"docker://{server.host}/new/app:v1", auth)
        assert denied.returncode != 0
        assert "ecr:CreateRepository" in denied.stderr or "403" in denied.stderr, denied.stderr
        failure(aws(server, "ecr", "describe-repositories", "--repository-names", "new/app"),
                "RepositoryNotFoundException")
        auth = skopeo_login(server, workdir, full, "full")
        pushed = copy(f"oci:{layout}:v1", f"docker://{server.host}/new/app:v1", auth)
        assert pushed.returncode == 0, pushed.stderr
        # Once it exists, the power user pushes to it.
        auth = skopeo_login(server, workdir, power, "power")
        pushed = copy(f"oci:{layout}:v1", f"docker://{server.host}/new/app:v2", auth)
        assert pushed.returncode == 0, pushed.stderr
    finally:
        server.stop()
