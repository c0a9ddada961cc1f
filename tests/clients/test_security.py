"""Regression tests for the defects found when berth was tried from outside
(issue 21): access control, credentials and input validation, with boto3."""

import json
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, ROOT_KEY, Berth, client, root_env

REPO_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository"
ECR_ALL = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess"


@pytest.fixture
def berth():
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    yield server
    server.stop()


def error_code(call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"]


def new_user(iam, name, policy=None, path="/"):
    iam.create_user(UserName=name, Path=path)
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def allow(action, resource="*", **extra):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}]}


def trust(principal):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})


def test_assume_role_follows_the_trust_policy(berth):
    """AWS's documented cases: the trust policy names the caller (no identity
    policy needed), or the account (the caller's identity policy must allow
    too); a service principal admits only the service; root cannot assume."""
    iam = client(berth, "iam")
    may_assume = allow("sts:AssumeRole")
    alice = new_user(iam, "alice", may_assume)
    bob = new_user(iam, "bob")
    carol = new_user(iam, "carol")
    me = f"arn:aws:iam::{ACCOUNT}:user"
    roles = {
        "names-bob": trust({"AWS": f"{me}/bob"}),
        "names-account": trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
        "service-only": trust({"Service": "omics.amazonaws.com"}),
    }
    for name, document in roles.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=document)

    def assume(key, role):
        return client(berth, "sts", key).assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="s1")

    # Named by its own ARN: bob needs no identity policy.
    assert assume(bob, "names-bob")["AssumedRoleUser"]["Arn"].endswith("assumed-role/names-bob/s1")
    # alice's identity policy allows sts:AssumeRole on *, but the role trusts only bob.
    assert error_code(assume, alice, "names-bob") == "AccessDenied"
    # The account principal delegates: alice (identity allow) may, carol (none) may not.
    assume(alice, "names-account")
    assert error_code(assume, carol, "names-account") == "AccessDenied"
    # Only the service may assume a service role.
    assert error_code(assume, alice, "service-only") == "AccessDenied"
    # The account root cannot call AssumeRole at all.
    assert error_code(assume, ROOT_KEY, "names-account") == "AccessDenied"


def test_a_key_of_an_unrecognised_principal_is_allowed_nothing(berth):
    iam = client(berth, "iam")
    # A key whose principal is no root, user or role session (here: rewritten
    # behind berth's back) must not be treated as a presigned URL's bearer.
    iam.create_user(UserName="probe")
    probe = iam.create_access_key(UserName="probe")["AccessKey"]
    berth.sql(f"UPDATE access_keys SET principal = 'arn:aws:iam::{ACCOUNT}:group/admins' "
              f"WHERE id = '{probe['AccessKeyId']}'")
    ecr = client(berth, "ecr", (probe["AccessKeyId"], probe["SecretAccessKey"]))
    assert error_code(ecr.describe_repositories) == "AccessDeniedException"
    assert error_code(ecr.create_repository, repositoryName="xy") == "AccessDeniedException"


def test_iam_creates_are_authorized_on_the_arn_with_its_path(berth):
    iam = client(berth, "iam")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:CreateUser", "iam:CreateGroup", "iam:CreateRole"], "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:*", "Resource": [
            f"arn:aws:iam::{ACCOUNT}:user/admins/*", f"arn:aws:iam::{ACCOUNT}:group/admins/*",
            f"arn:aws:iam::{ACCOUNT}:role/admins/*"]}]}
    helper = client(berth, "iam", new_user(iam, "helper", policy))
    helper.create_user(UserName="dev1", Path="/devs/")
    assert error_code(helper.create_user, UserName="boss", Path="/admins/") == "AccessDenied"
    assert error_code(helper.create_group, GroupName="ops", Path="/admins/") == "AccessDenied"
    assert error_code(helper.create_role, RoleName="god", Path="/admins/",
                      AssumeRolePolicyDocument=trust({"AWS": ACCOUNT})) == "AccessDenied"
    # An allow scoped by path matches the path too.
    scoped = client(berth, "iam", new_user(iam, "scoped", allow("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/devs/*")))
    scoped.create_user(UserName="dev2", Path="/devs/")
    assert error_code(scoped.create_user, UserName="dev3") == "AccessDenied"


def test_tag_and_repository_changes_apply_at_once(berth):
    ecr = client(berth, "ecr")
    iam = client(berth, "iam")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecr:PutImageTagMutability", "Resource": "*",
         "Condition": {"StringEquals": {"ecr:ResourceTag/frozen": "true"}}}]}
    dev = client(berth, "ecr", new_user(iam, "dev", policy))
    arn = ecr.create_repository(repositoryName="app")["repository"]["repositoryArn"]
    dev.put_image_tag_mutability(repositoryName="app", imageTagMutability="MUTABLE")  # cached: not frozen
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "frozen", "Value": "true"}])
    assert error_code(dev.put_image_tag_mutability, repositoryName="app",
                      imageTagMutability="IMMUTABLE") == "AccessDeniedException"
    ecr.untag_resource(resourceArn=arn, tagKeys=["frozen"])
    dev.put_image_tag_mutability(repositoryName="app", imageTagMutability="IMMUTABLE")

    # A re-created repository does not inherit its predecessor's policy.
    ecr.set_repository_policy(repositoryName="app", policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Sid": "deny-dev", "Effect": "Deny",
                                                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/dev"},
                                                "Action": "ecr:*"}]}))
    assert error_code(dev.describe_repositories, repositoryNames=["app"]) == "AccessDeniedException"
    ecr.delete_repository(repositoryName="app", force=True)
    ecr.create_repository(repositoryName="app")
    assert dev.describe_repositories(repositoryNames=["app"])["repositories"][0]["repositoryName"] == "app"


def test_source_ip_conditions_apply_to_ipv4_clients_of_a_dual_stack_listener():
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()}, listen="[::]:0")
    try:
        iam = client(server, "iam")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ecr:*", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}
        fenced = client(server, "ecr", new_user(iam, "fenced", policy))
        assert server.url.startswith("http://127.0.0.1:")
        assert error_code(fenced.describe_repositories) == "AccessDeniedException"
    finally:
        server.stop()


def test_a_revoked_root_key_stays_revoked_across_restarts(berth):
    iam = client(berth, "iam")
    iam.update_access_key(AccessKeyId=ROOT_KEY[0], Status="Inactive")
    berth.halt()
    berth.start()
    assert error_code(client(berth, "ecr").describe_repositories) == "UnrecognizedClientException"
    berth.sql(f"DELETE FROM access_keys WHERE id = '{ROOT_KEY[0]}'")
    berth.halt()
    berth.start()
    assert error_code(client(berth, "ecr").describe_repositories) == "UnrecognizedClientException"
    # The deliberate way back: a new root key, written to root-credentials.
    berth.halt()
    out = berth.admin("rotate-root-key")
    fields = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    new_key = (fields["aws_access_key_id"], fields["aws_secret_access_key"])
    assert new_key[0] != ROOT_KEY[0]
    with open(os.path.join(berth.data, "root-credentials")) as f:
        assert new_key[1] in f.read()
    berth.start()
    assert client(berth, "ecr", new_key).describe_repositories()["repositories"] == []
    assert error_code(client(berth, "ecr").describe_repositories) == "UnrecognizedClientException"


def test_live_sessions_are_bounded_per_principal(berth):
    iam = client(berth, "iam")
    key = new_user(iam, "busy", allow("ecr:*"))
    sts = client(berth, "sts", key)
    sts.get_session_token(DurationSeconds=900)
    # 999 more live sessions of this user, as if issued before.
    berth.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 999) "
        "INSERT INTO access_keys (id, secret, principal, status, created_at, expires_at) "
        f"SELECT 'ASIAFAKE' || i, '', 'arn:aws:iam::{ACCOUNT}:user/busy', 'Active', 0, 99999999999999 FROM n")
    assert error_code(sts.get_session_token, DurationSeconds=900) == "LimitExceeded"
    # Other principals are not affected; expired sessions do not count.
    client(berth, "sts").get_session_token(DurationSeconds=900)
    berth.sql("UPDATE access_keys SET expires_at = 1000 WHERE id LIKE 'ASIAFAKE%'")
    sts.get_session_token(DurationSeconds=900)


def test_a_session_token_with_a_long_term_key_is_refused(berth):
    ecr = client(berth, "ecr", ROOT_KEY, token="garbage")
    assert error_code(ecr.describe_repositories) == "UnrecognizedClientException"


def test_model_patterns_are_ascii_as_on_aws(berth):
    iam = client(berth, "iam")
    assert error_code(iam.create_user, UserName="usér") == "ValidationError"
    iam.create_user(UserName="user+ci@team")


def test_a_node_with_another_secret_key_refuses_to_start(berth):
    client(berth, "ecr").create_repository(repositoryName="kept")
    berth.halt()
    key_file = os.path.join(berth.data, "secret.key")
    with open(key_file, "wb") as f:
        f.write(os.urandom(32))
    result = subprocess.run(berth.command, capture_output=True, text=True, env=berth.env, timeout=60)
    assert result.returncode != 0
    assert "secret.key" in result.stderr and "same secret key" in result.stderr, result.stderr
