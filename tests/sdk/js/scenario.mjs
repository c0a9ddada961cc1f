// The ECR scenario of tests/clients/test_sdks.py, with the AWS SDK for
// JavaScript v3 (@aws-sdk/client-ecr) unchanged but for the endpoint.
//
// Environment: AWS_ENDPOINT_URL (read by the SDK itself; BERTH_ENDPOINT, if
// set, is passed as `endpoint` instead), AWS_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY (the SDK's own credential chain).
// Prints one JSON summary on stdout; exits 1 if any check failed, 2 if the
// scenario could not go on.

import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";

import {
  BatchCheckLayerAvailabilityCommand,
  BatchDeleteImageCommand,
  BatchGetImageCommand,
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  DeleteRepositoryCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  ECRServiceException,
  GetAuthorizationTokenCommand,
  GetDownloadUrlForLayerCommand,
  ImageAlreadyExistsException,
  ImageNotFoundException,
  InitiateLayerUploadCommand,
  ListImagesCommand,
  PutImageCommand,
  RepositoryAlreadyExistsException,
  RepositoryNotEmptyException,
  RepositoryNotFoundException,
  UploadLayerPartCommand,
  paginateDescribeImages,
  paginateDescribeRepositories,
  paginateListImages,
} from "@aws-sdk/client-ecr";

const REPO = "sdk/app";
const EXTRA_REPOS = ["sdk/extra-1", "sdk/extra-2", "sdk/extra-3", "sdk/extra-4"];
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip";

const failures = [];
let checks = 0;

function check(ok, what) {
  checks += 1;
  if (!ok) {
    const text = typeof what === "function" ? what() : what;
    console.error(`MISMATCH: ${text}`);
    failures.push(text);
  }
}

function eq(what, got, want) {
  check(isDeepStrictEqual(got, want), () => `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

function fatal(what, err) {
  console.error(`FATAL: ${what}:`, err);
  console.log(JSON.stringify({ sdk: "aws-sdk-js-v3", fatal: `${what}: ${err?.name ?? ""} ${err?.message ?? err}` }));
  process.exit(2);
}

async function call(what, promise) {
  try {
    return await promise;
  } catch (err) {
    fatal(what, err);
  }
}

/** The error a call fails with (or a failed check if it succeeds). */
async function failure(what, promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  check(false, `${what} succeeded`);
  return null;
}

const sha256 = (data) => "sha256:" + createHash("sha256").update(data).digest("hex");
const nowSecs = () => Date.now() / 1000;
/** A timestamp the SDK parsed into a Date, within `slack` seconds of `expected`. */
const near = (time, expected, slack) =>
  time instanceof Date && !Number.isNaN(time.getTime()) && Math.abs(time.getTime() / 1000 - expected) < slack;

const endpoint = (process.env.BERTH_ENDPOINT || process.env.AWS_ENDPOINT_URL || "").replace(/\/+$/, "");
if (!endpoint) fatal("environment", "set AWS_ENDPOINT_URL (or BERTH_ENDPOINT)");

const ecr = new ECRClient(process.env.BERTH_ENDPOINT ? { endpoint } : {});
const region = await ecr.config.region();
const started = nowSecs();
const errors = {};
const errorStatuses = new Set();

/** Records a typed service error: its class, fault and HTTP status. */
function expectError(operation, err, type) {
  if (!err) return;
  errorStatuses.add(err.$metadata?.httpStatusCode);
  check(err instanceof type, () => `${operation}: ${err.name} (${err.constructor?.name}) is not ${type.name}: ${err.message}`);
  check(err instanceof ECRServiceException, () => `${operation}: ${err.name} is not an ECRServiceException`);
  eq(`${operation} error name`, err.name, type.name);
  eq(`${operation} error $fault`, err.$fault, "client");
  eq(`${operation} error status`, err.$metadata?.httpStatusCode, 400);
  check(Boolean(err.$metadata?.requestId), () => `${operation}: no requestId in ${JSON.stringify(err.$metadata)}`);
  if (err instanceof type) errors[operation] = type.name;
}

// 1. CreateRepository, and again: RepositoryAlreadyExistsException.
const created = await call(
  "CreateRepository",
  ecr.send(new CreateRepositoryCommand({ repositoryName: REPO, imageTagMutability: "MUTABLE" })),
);
const repo = created.repository ?? fatal("CreateRepository", "no repository");
const account = repo.registryId;
check(/^\d{12}$/.test(account ?? ""), `registryId ${account}`);
eq("repositoryName", repo.repositoryName, REPO);
eq("repositoryArn", repo.repositoryArn, `arn:aws:ecr:${region}:${account}:repository/${REPO}`);
eq("repositoryUri", repo.repositoryUri, `${new URL(endpoint).host}/${REPO}`);
eq("imageTagMutability", repo.imageTagMutability, "MUTABLE");
check(near(repo.createdAt, started, 300), () => `createdAt ${repo.createdAt}`);
for (const extra of EXTRA_REPOS) {
  await call("CreateRepository", ecr.send(new CreateRepositoryCommand({ repositoryName: extra })));
}
{
  const err = await failure("CreateRepository twice", ecr.send(new CreateRepositoryCommand({ repositoryName: REPO })));
  expectError("CreateRepository", err, RepositoryAlreadyExistsException);
  check(err?.message?.includes("already exists"), () => `message ${err?.message}`);
}

{
  // An error outside CreateRepository's model (berth answers ValidationException,
  // as AWS's request validation does): the SDK's generic ECRServiceException, named by its code.
  const err = await failure(
    "CreateRepository of an invalid name",
    ecr.send(new CreateRepositoryCommand({ repositoryName: "Sdk/Upper" })),
  );
  if (err) {
    errorStatuses.add(err.$metadata?.httpStatusCode);
    check(err instanceof ECRServiceException, () => `${err.name} is not an ECRServiceException`);
    eq("invalid name error $fault", err.$fault, "client");
    eq("invalid name error status", err.$metadata?.httpStatusCode, 400);
    check(err.message?.includes("Sdk/Upper"), () => `message ${err.message}`);
    errors["CreateRepository(invalid name)"] = err.name;
  }
}

// 2. GetAuthorizationToken: "AWS:<password>", for this endpoint, 12 hours.
const token = await call("GetAuthorizationToken", ecr.send(new GetAuthorizationTokenCommand({})));
eq("authorizationData entries", token.authorizationData?.length, 1);
const data = token.authorizationData?.[0] ?? fatal("GetAuthorizationToken", "no authorizationData");
const decoded = Buffer.from(data.authorizationToken ?? "", "base64").toString();
const [user, ...rest] = decoded.split(":");
const password = rest.join(":");
eq("token user", user, "AWS");
check(password.length > 0, "empty token password");
eq("proxyEndpoint", data.proxyEndpoint, endpoint);
check(near(data.expiresAt, started + 12 * 3600, 300), () => `expiresAt ${data.expiresAt}`);
const basic = `Basic ${data.authorizationToken}`;
{
  const r = await fetch(`${endpoint}/v2/`, { headers: { Authorization: basic } });
  eq("GET /v2/ with the token", r.status, 200);
}

// 3. Push an image with the API's layer operations and PutImage (Docker v2 manifest).
const configBlob = Buffer.from(
  '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},"seed":"js-api"}',
);
const layerBlob = Buffer.from("a layer pushed with UploadLayerPart by aws-sdk-js-v3\n".repeat(64));
const layerSizes = {};
for (const blob of [configBlob, layerBlob]) {
  const digest = sha256(blob);
  const upload = await call("InitiateLayerUpload", ecr.send(new InitiateLayerUploadCommand({ repositoryName: REPO })));
  check(typeof upload.uploadId === "string", () => `uploadId ${upload.uploadId}`);
  check(upload.partSize >= 5 * 1024 * 1024, () => `partSize ${upload.partSize}`);
  const part = await call(
    "UploadLayerPart",
    ecr.send(
      new UploadLayerPartCommand({
        repositoryName: REPO,
        uploadId: upload.uploadId,
        partFirstByte: 0,
        partLastByte: blob.length - 1,
        layerPartBlob: new Uint8Array(blob),
      }),
    ),
  );
  eq("UploadLayerPart lastByteReceived", part.lastByteReceived, blob.length - 1);
  eq("UploadLayerPart uploadId", part.uploadId, upload.uploadId);
  const done = await call(
    "CompleteLayerUpload",
    ecr.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId: upload.uploadId, layerDigests: [digest] })),
  );
  eq("CompleteLayerUpload layerDigest", done.layerDigest, digest);
  layerSizes[digest] = blob.length;
}
{
  const checked = await call(
    "BatchCheckLayerAvailability",
    ecr.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: REPO, layerDigests: Object.keys(layerSizes) })),
  );
  eq("BatchCheckLayerAvailability layers", checked.layers?.length, 2);
  for (const layer of checked.layers ?? []) {
    eq("layerAvailability", layer.layerAvailability, "AVAILABLE");
    eq("layerSize", layer.layerSize, layerSizes[layer.layerDigest]);
  }
  eq("BatchCheckLayerAvailability failures", checked.failures ?? [], []);
}
const v1Manifest = JSON.stringify({
  schemaVersion: 2,
  mediaType: DOCKER_MANIFEST,
  config: { mediaType: DOCKER_CONFIG, digest: sha256(configBlob), size: configBlob.length },
  layers: [{ mediaType: DOCKER_LAYER, digest: sha256(layerBlob), size: layerBlob.length }],
});
const v1Digest = sha256(v1Manifest);
{
  const put = await call(
    "PutImage",
    ecr.send(new PutImageCommand({ repositoryName: REPO, imageManifest: v1Manifest, imageTag: "v1" })),
  );
  eq("PutImage digest", put.image?.imageId?.imageDigest, v1Digest);
  eq("PutImage tag", put.image?.imageId?.imageTag, "v1");
  eq("PutImage media type", put.image?.imageManifestMediaType, DOCKER_MANIFEST);
  await call(
    "PutImage latest",
    ecr.send(new PutImageCommand({ repositoryName: REPO, imageManifest: v1Manifest, imageTag: "latest" })),
  );
  const err = await failure(
    "PutImage of the same image and tag",
    ecr.send(new PutImageCommand({ repositoryName: REPO, imageManifest: v1Manifest, imageTag: "v1" })),
  );
  expectError("PutImage", err, ImageAlreadyExistsException);
}

// 4. Push a second image over /v2/ with the token (OCI manifest).
const v2Config = Buffer.from('{"architecture":"arm64","os":"linux","seed":"js-v2"}');
const v2Layer = Buffer.from("a layer pushed over /v2/ with the ECR token\n");
for (const blob of [v2Config, v2Layer]) {
  const r = await fetch(`${endpoint}/v2/${REPO}/blobs/uploads/?digest=${sha256(blob)}`, {
    method: "POST",
    headers: { Authorization: basic, "Content-Type": "application/octet-stream" },
    body: blob,
  });
  eq("monolithic blob upload over /v2/", r.status, 201);
}
const v2Manifest = JSON.stringify({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config: { mediaType: OCI_CONFIG, digest: sha256(v2Config), size: v2Config.length },
  layers: [{ mediaType: OCI_LAYER, digest: sha256(v2Layer), size: v2Layer.length }],
});
const v2Digest = sha256(v2Manifest);
{
  const r = await fetch(`${endpoint}/v2/${REPO}/manifests/v2`, {
    method: "PUT",
    headers: { Authorization: basic, "Content-Type": OCI_MANIFEST },
    body: v2Manifest,
  });
  eq("manifest PUT over /v2/", r.status, 201);
  eq("Docker-Content-Digest", r.headers.get("docker-content-digest"), v2Digest);
  // The image put through the API pulls over /v2/ with the same bytes.
  const pulled = await fetch(`${endpoint}/v2/${REPO}/manifests/v1`, {
    headers: { Authorization: basic, Accept: `${DOCKER_MANIFEST}, ${OCI_MANIFEST}` },
  });
  eq("manifest GET over /v2/", pulled.status, 200);
  eq("pulled manifest", await pulled.text(), v1Manifest);
}

// 5. More images, so that the lists take several pages: five tagged, one untagged.
const expected = new Set([`${v1Digest} v1`, `${v1Digest} latest`, `${v2Digest} v2`]);
let untaggedDigest = "";
for (let i = 1; i <= 6; i++) {
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: sha256(configBlob), size: configBlob.length },
    layers: [{ mediaType: OCI_LAYER, digest: sha256(layerBlob), size: layerBlob.length }],
    annotations: { seed: `js-${i}` },
  });
  const tag = i <= 5 ? `t${i}` : undefined;
  const put = await call(
    "PutImage",
    ecr.send(
      new PutImageCommand({
        repositoryName: REPO,
        imageManifest: manifest,
        imageManifestMediaType: OCI_MANIFEST,
        imageTag: tag,
      }),
    ),
  );
  const digest = put.image?.imageId?.imageDigest;
  eq("PutImage digest", digest, sha256(manifest));
  if (!tag) untaggedDigest = digest;
  expected.add(`${digest} ${tag ?? "-"}`);
}
const digests = new Set([...expected].map((e) => e.split(" ")[0]));

// 6. ListImages, two at a time, with the paginator.
const listed = [];
let listPages = 0;
for await (const page of paginateListImages({ client: ecr }, { repositoryName: REPO, maxResults: 2 })) {
  listPages += 1;
  check(Array.isArray(page.imageIds) && page.imageIds.length <= 2, () => `ListImages page ${JSON.stringify(page.imageIds)}`);
  for (const id of page.imageIds ?? []) listed.push(`${id.imageDigest} ${id.imageTag ?? "-"}`);
}
eq("ListImages entries", listed.length, expected.size);
eq("ListImages ids", new Set(listed), expected);
{
  const untagged = await call(
    "ListImages UNTAGGED",
    ecr.send(new ListImagesCommand({ repositoryName: REPO, filter: { tagStatus: "UNTAGGED" } })),
  );
  eq("ListImages UNTAGGED", (untagged.imageIds ?? []).map((i) => i.imageDigest), [untaggedDigest]);
  eq("ListImages UNTAGGED nextToken", untagged.nextToken, undefined);
  // An empty repository: an empty list, one page.
  let emptyPages = 0;
  let emptyIds = 0;
  for await (const page of paginateListImages({ client: ecr }, { repositoryName: EXTRA_REPOS[0], maxResults: 2 })) {
    emptyPages += 1;
    emptyIds += (page.imageIds ?? []).length;
  }
  eq("ListImages of an empty repository: pages", emptyPages, 1);
  eq("ListImages of an empty repository: ids", emptyIds, 0);
}

// 7. DescribeImages, three at a time: timestamps as Date, tags, sizes.
const details = [];
let describePages = 0;
for await (const page of paginateDescribeImages({ client: ecr }, { repositoryName: REPO, maxResults: 3 })) {
  describePages += 1;
  check((page.imageDetails ?? []).length <= 3, () => `DescribeImages page of ${page.imageDetails?.length}`);
  details.push(...(page.imageDetails ?? []));
}
eq("DescribeImages digests", new Set(details.map((d) => d.imageDigest)), digests);
eq("DescribeImages details", details.length, digests.size);
for (const d of details) {
  check(near(d.imagePushedAt, started, 300), () => `imagePushedAt of ${d.imageDigest}: ${d.imagePushedAt}`);
  eq("registryId", d.registryId, account);
  eq("repositoryName", d.repositoryName, REPO);
  check(d.imageSizeInBytes > 0, () => `imageSizeInBytes of ${d.imageDigest}: ${d.imageSizeInBytes}`);
  const want = [...expected]
    .filter((e) => e.startsWith(`${d.imageDigest} `))
    .map((e) => e.split(" ")[1])
    .filter((t) => t !== "-")
    .sort();
  eq(`imageTags of ${d.imageDigest}`, [...(d.imageTags ?? [])].sort(), want);
  eq(
    `imageManifestMediaType of ${d.imageDigest}`,
    d.imageManifestMediaType,
    d.imageDigest === v1Digest ? DOCKER_MANIFEST : OCI_MANIFEST,
  );
}
{
  const v2 = await call(
    "DescribeImages v2",
    ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: "v2" }] })),
  );
  eq("DescribeImages v2", v2.imageDetails?.length, 1);
  eq("v2 digest", v2.imageDetails?.[0]?.imageDigest, v2Digest);
  eq("v2 artifactMediaType", v2.imageDetails?.[0]?.artifactMediaType, OCI_CONFIG);
  eq("v2 imageSizeInBytes", v2.imageDetails?.[0]?.imageSizeInBytes, v2Layer.length);
  // The /v2/ pull of v1 above is recorded in the background: lastRecordedPullTime, a Date.
  let pulledAt;
  for (let i = 0; i < 50 && !pulledAt; i++) {
    const v1 = await call(
      "DescribeImages v1",
      ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: "v1" }] })),
    );
    pulledAt = v1.imageDetails?.[0]?.lastRecordedPullTime;
    if (!pulledAt) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  check(near(pulledAt, started, 300), () => `lastRecordedPullTime ${pulledAt}`);
  const err = await failure(
    "DescribeImages of a missing tag",
    ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: "nope" }] })),
  );
  expectError("DescribeImages", err, ImageNotFoundException);
}

// 8. DescribeRepositories, two at a time.
const names = [];
let repositoryPages = 0;
for await (const page of paginateDescribeRepositories({ client: ecr }, { maxResults: 2 })) {
  repositoryPages += 1;
  check((page.repositories ?? []).length <= 2, () => `DescribeRepositories page of ${page.repositories?.length}`);
  for (const r of page.repositories ?? []) {
    names.push(r.repositoryName);
    check(near(r.createdAt, started, 300), () => `createdAt ${r.createdAt}`);
  }
}
eq("DescribeRepositories names", names.sort(), [...EXTRA_REPOS, REPO].sort());

// 9. BatchGetImage: the manifests as pushed, a failure for the missing tag.
{
  const got = await call(
    "BatchGetImage",
    ecr.send(
      new BatchGetImageCommand({
        repositoryName: REPO,
        imageIds: [{ imageTag: "v1" }, { imageTag: "v2" }, { imageTag: "missing" }],
        acceptedMediaTypes: [DOCKER_MANIFEST, OCI_MANIFEST],
      }),
    ),
  );
  const byTag = Object.fromEntries((got.images ?? []).map((i) => [i.imageId?.imageTag, [i.imageManifest, i.imageManifestMediaType]]));
  eq("BatchGetImage v1", byTag.v1, [v1Manifest, DOCKER_MANIFEST]);
  eq("BatchGetImage v2", byTag.v2, [v2Manifest, OCI_MANIFEST]);
  eq("BatchGetImage images", got.images?.length, 2);
  eq(
    "BatchGetImage failures",
    (got.failures ?? []).map((f) => [f.imageId?.imageTag, f.failureCode]),
    [["missing", "ImageNotFound"]],
  );
  const allFound = await call(
    "BatchGetImage",
    ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: [{ imageDigest: v2Digest }] })),
  );
  eq("BatchGetImage all found: images", allFound.images?.length, 1);
  eq("BatchGetImage all found: failures", allFound.failures ?? [], []);
}

// GetDownloadUrlForLayer: the layer, by URL, without credentials.
{
  const url = await call(
    "GetDownloadUrlForLayer",
    ecr.send(new GetDownloadUrlForLayerCommand({ repositoryName: REPO, layerDigest: sha256(layerBlob) })),
  );
  eq("GetDownloadUrlForLayer layerDigest", url.layerDigest, sha256(layerBlob));
  const r = await fetch(url.downloadUrl);
  eq("download status", r.status, 200);
  check(Buffer.from(await r.arrayBuffer()).equals(layerBlob), "the downloaded layer differs");
}

// BatchDeleteImage of one tag.
{
  const deleted = await call(
    "BatchDeleteImage",
    ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageTag: "latest" }] })),
  );
  eq("BatchDeleteImage imageIds", deleted.imageIds, [{ imageDigest: v1Digest, imageTag: "latest" }]);
  eq("BatchDeleteImage failures", deleted.failures ?? [], []);
  const err = await failure(
    "BatchDeleteImage on a missing repository",
    ecr.send(new BatchDeleteImageCommand({ repositoryName: "sdk/missing", imageIds: [{ imageTag: "x" }] })),
  );
  expectError("BatchDeleteImage", err, RepositoryNotFoundException);
}

// 10. Errors: a missing repository; deleting a repository that holds images.
{
  const err = await failure(
    "DescribeRepositories of a missing repository",
    ecr.send(new DescribeRepositoriesCommand({ repositoryNames: ["sdk/missing"] })),
  );
  expectError("DescribeRepositories", err, RepositoryNotFoundException);
  eq(
    "error message",
    err?.message,
    `The repository with name 'sdk/missing' does not exist in the registry with id '${account}'`,
  );
  const notEmpty = await failure(
    "DeleteRepository of a repository with images",
    ecr.send(new DeleteRepositoryCommand({ repositoryName: REPO })),
  );
  expectError("DeleteRepository", notEmpty, RepositoryNotEmptyException);
}

// 11. DeleteRepository with force; then nothing is left.
{
  const gone = await call("DeleteRepository force", ecr.send(new DeleteRepositoryCommand({ repositoryName: REPO, force: true })));
  eq("DeleteRepository name", gone.repository?.repositoryName, REPO);
  for (const extra of EXTRA_REPOS) {
    await call("DeleteRepository", ecr.send(new DeleteRepositoryCommand({ repositoryName: extra })));
  }
  const err = await failure(
    "DescribeRepositories after delete",
    ecr.send(new DescribeRepositoriesCommand({ repositoryNames: [REPO] })),
  );
  check(err instanceof RepositoryNotFoundException, () => `DescribeRepositories after delete: ${err?.name}`);
  const left = await call("DescribeRepositories", ecr.send(new DescribeRepositoriesCommand({})));
  eq("repositories left", left.repositories, []);
  eq("nextToken on an empty list", left.nextToken, undefined);
}

const summary = {
  sdk: "aws-sdk-js-v3",
  repositoryUri: repo.repositoryUri,
  proxyEndpoint: data.proxyEndpoint,
  tokenUser: user,
  account,
  pushed: { api: v1Digest, v2: v2Digest },
  images: digests.size,
  imageIds: listed.length,
  pages: { ListImages: listPages, DescribeImages: describePages, DescribeRepositories: repositoryPages },
  errors: Object.fromEntries(Object.entries(errors).sort()),
  errorStatuses: [...errorStatuses].sort(),
  checks,
  failures,
};
console.log(JSON.stringify(summary, null, 2));
process.exit(failures.length ? 1 : 0);
