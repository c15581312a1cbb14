// The OpenAPI 3 description of the REST API (docs/rest-api.md), served at
// GET /api/v1/openapi.json. A test checks that its paths and methods are
// exactly the routes add_api_routes registers.
// Built once, on first use; thread-safe.
#pragma once

#include <string>

namespace df::server {

// The document as JSON text.
const std::string& openapi_document();

}  // namespace df::server
