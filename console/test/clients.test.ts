import { test } from "node:test";
import assert from "node:assert/strict";
import { ListProjectsCommand } from "@aws-sdk/client-lookoutvision";
import { lookoutVisionClient, siteSettings, type Settings } from "../src/clients";

const local: Settings = { endpoint: "http://127.0.0.1:9", region: "eu-west-1", accessKeyId: "AKID", secretAccessKey: "s", sessionToken: "", bucket: "b", artifactsBucket: "a", apiGateway: false };

/** The Authorization header a client would send (the network replaced by a recorder). */
async function scope(settings: Settings): Promise<string> {
  let authorization = "";
  const requestHandler = {
    handle: async (request: { headers: Record<string, string> }) => {
      authorization = request.headers.authorization;
      return { response: { statusCode: 200, headers: { "content-type": "application/json" }, body: new TextEncoder().encode('{"Projects":[]}') } };
    },
  };
  await lookoutVisionClient(settings, { requestHandler }).send(new ListProjectsCommand({}));
  return /Credential=[^/]+\/\d+\/([^/]+)\/([^/]+)\//.exec(authorization)!.slice(1).join("/");
}

test("locally the API is signed for lookoutvision, a deployed stack for execute-api", async () => {
  assert.equal(await scope(local), "eu-west-1/lookoutvision");
  assert.equal(await scope({ ...local, apiGateway: true }), "eu-west-1/execute-api");
});

test("a site's config.json sets where the service is, never the credentials", () => {
  const config = { endpoint: "https://api.example/v1", apiGateway: true, artifactsBucket: "art", accessKeyId: "AKID", secretAccessKey: "s" };
  assert.deepEqual(siteSettings(config), { endpoint: "https://api.example/v1", apiGateway: true, artifactsBucket: "art" });
});
