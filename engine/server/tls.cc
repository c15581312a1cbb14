#include "engine/server/tls.h"

#include <filesystem>
#include <fstream>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio/ssl/context.hpp>

namespace df::server {

namespace {

namespace ssl = boost::asio::ssl;

// Forward secrecy and AEAD only (TLS 1.2; TLS 1.3 suites are all fine).
constexpr char kCipherList[] =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
// Sessions resumed across connections must keep the client verification.
constexpr unsigned char kSessionIdContext[] = "dataflow-api";

// The newest OpenSSL error as text ("no start line", "key values mismatch").
std::string openssl_reason(const boost::system::error_code& ec) {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code != 0) {
    const char* reason = ERR_reason_error_string(code);
    if (reason != nullptr) return reason;
  }
  return ec ? ec.message() : "unknown error";
}

Status readable(const std::string& what, const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::invalid("cannot read the TLS " + what + " " + path);
  return Status::OK();
}

Result<std::shared_ptr<ssl::context>> load(const TlsOptions& o) {
  DF_RETURN_IF_ERROR(readable("certificate", o.cert_file));
  DF_RETURN_IF_ERROR(readable("private key", o.key_file));
  if (!o.ca_file.empty()) DF_RETURN_IF_ERROR(readable("CA file", o.ca_file));
  ERR_clear_error();
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                       ec);
  SSL_CTX* native = context->native_handle();
  if (ec || SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, kCipherList) != 1) {
    return Status::internal("cannot set up TLS: " + openssl_reason(ec));
  }
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  context->use_certificate_chain_file(o.cert_file, ec);
  if (ec) {
    return Status::invalid("cannot load the TLS certificate " + o.cert_file + ": " +
                           openssl_reason(ec));
  }
  context->use_private_key_file(o.key_file, ssl::context::pem, ec);
  if (ec) {
    return Status::invalid("cannot load the TLS private key " + o.key_file + ": " +
                           openssl_reason(ec));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return Status::invalid("the TLS private key " + o.key_file +
                           " does not match the certificate " + o.cert_file);
  }
  if (!o.ca_file.empty()) {
    context->load_verify_file(o.ca_file, ec);
    if (ec) {
      return Status::invalid("cannot load the TLS CA file " + o.ca_file + ": " +
                             openssl_reason(ec));
    }
    // The CA's names are what the server asks a client certificate from.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(native, names);
    ERR_clear_error();
    // Without verify_client a certificate is optional, but one that is sent
    // must verify.
    context->set_verify_mode(
        o.verify_client ? ssl::verify_peer | ssl::verify_fail_if_no_peer_cert : ssl::verify_peer,
        ec);
    SSL_CTX_set_session_id_context(native, kSessionIdContext, sizeof kSessionIdContext - 1);
  }
  return context;
}

std::string asn1_text(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::create(TlsOptions options) {
  if (options.verify_client && options.ca_file.empty()) {
    return Status::invalid("tls.verify_client needs tls.ca_file");
  }
  std::shared_ptr<TlsContext> tls(new TlsContext(std::move(options)));
  DF_ASSIGN_OR_RETURN(tls->context_, load(tls->options_));
  return tls;
}

Status TlsContext::reload() {
  DF_ASSIGN_OR_RETURN(auto context, load(options_));
  std::lock_guard lock(mu_);
  context_ = std::move(context);
  return Status::OK();
}

std::shared_ptr<ssl::context> TlsContext::current() const {
  std::lock_guard lock(mu_);
  return context_;
}

TlsPeer verified_peer(SSL* ssl) {
  TlsPeer peer;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return peer;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    if (BIO* bio = BIO_new(BIO_s_mem())) {
      X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
      char* data = nullptr;
      const long size = BIO_get_mem_data(bio, &data);
      if (size > 0) peer.subject.assign(data, static_cast<size_t>(size));
      BIO_free(bio);
    }
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (names != nullptr) {
      for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
        if (name->type == GEN_DNS) peer.sans.push_back(asn1_text(name->d.dNSName));
        if (name->type == GEN_URI) {
          peer.sans.push_back(asn1_text(name->d.uniformResourceIdentifier));
        }
        if (name->type == GEN_EMAIL) peer.sans.push_back(asn1_text(name->d.rfc822Name));
      }
      GENERAL_NAMES_free(names);
    }
  }
  X509_free(cert);
  return peer;
}

}  // namespace df::server
