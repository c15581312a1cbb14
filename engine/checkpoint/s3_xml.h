// Private to engine/checkpoint: the few pieces of S3's XML responses the
// storage reads (ListObjectsV2, errors, CreateMultipartUpload), and the URI
// encoding SigV4 needs. Minimal, but tolerant of attributes, whitespace,
// self-closing elements and entities.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace df::checkpoint::s3 {

// The text of the first <name>...</name> at or after `from` (entities
// decoded); `end` (if given) receives the offset after the closing tag.
std::optional<std::string> xml_element(std::string_view xml, std::string_view name, size_t from = 0,
                                       size_t* end = nullptr);

// The raw (undecoded) inner text of every <name>...</name>, in order.
std::vector<std::string_view> xml_elements_raw(std::string_view xml, std::string_view name);

// &amp; &lt; &gt; &quot; &apos; &#NN; &#xNN; -> characters (UTF-8).
std::string xml_unescape(std::string_view s);
std::string xml_escape(std::string_view s);

struct ListPage {
  struct Item {
    std::string key;
    uint64_t size = 0;
  };
  std::vector<Item> items;
  bool truncated = false;
  std::string next_token;
};
// Parses a ListObjectsV2 response; nullopt when it is not one.
std::optional<ListPage> parse_list_objects_v2(std::string_view xml);

struct ErrorInfo {
  std::string code;     // "NoSuchKey", "SignatureDoesNotMatch", ... (empty if none)
  std::string message;  // S3's own message (may be empty)
};
ErrorInfo parse_error(std::string_view xml);

// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - _ . ~ (and '/'
// when keep_slash), upper-case hex: SigV4's canonical form.
std::string uri_encode(std::string_view s, bool keep_slash);

}  // namespace df::checkpoint::s3
