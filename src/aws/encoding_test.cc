#include "aws/encoding.h"

#include <gtest/gtest.h>

#include <vector>

#include "aws/xml.h"

namespace imagegen::aws {
namespace {

TEST(Encoding, UriEncode) {
  EXPECT_EQ(UriEncode("AZaz09-_.~", false), "AZaz09-_.~");
  EXPECT_EQ(UriEncode("a b+c/d%", false), "a%20b%2Bc%2Fd%25");
  EXPECT_EQ(UriEncode("a b+c/d%", true), "a%20b%2Bc/d%25");
  EXPECT_EQ(UriEncode("ü", false), "%C3%BC");
}

TEST(Encoding, UriDecode) {
  EXPECT_EQ(UriDecode("a%20b%2bc%2F%C3%BC"), "a b+c/ü");
  EXPECT_EQ(UriDecode("a+b", true), "a b");
  EXPECT_EQ(UriDecode("a+b", false), "a+b");
  EXPECT_EQ(UriDecode("100%"), "100%");
  EXPECT_EQ(UriDecode("%zz"), "%zz");
}

TEST(Encoding, Base64RoundTrip) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba",
                                                       "foobar", std::string("\0\xff", 2)}) {
    auto d = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_FALSE(Base64Decode("abc").has_value());
}

TEST(Encoding, Digests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Base64Encode(Md5("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(HexEncode(HmacSha256("key", "The quick brown fox jumps over the lazy dog")),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
}

TEST(Encoding, Dates) {
  EXPECT_EQ(FormatAmzDate(1440938160), "20150830T123600Z");
  EXPECT_EQ(ParseIso8601Ms("2015-08-30T12:36:00Z"), 1440938160000);
  EXPECT_EQ(ParseIso8601Ms("2015-08-30T12:36:00.250Z"), 1440938160250);
  EXPECT_EQ(ParseIso8601Ms("2015-08-30T14:36:00+02:00"), 1440938160000);
  EXPECT_FALSE(ParseIso8601Ms("yesterday").has_value());
  EXPECT_EQ(ParseHttpDateMs("Sun, 30 Aug 2015 12:36:00 GMT"), 1440938160000);
  EXPECT_FALSE(ParseHttpDateMs("Sun, 30 Foo 2015 12:36:00 GMT").has_value());
}

TEST(Xml, ParsesListingWithEntitiesAndCdata) {
  auto doc = ParseXml(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<!-- c --><Name>b</Name><Contents><Key>a&amp;b &lt;&#233;&#x4E2D;&gt;</Key>"
      "<ETag>&quot;e&quot;</ETag></Contents><Contents><Key><![CDATA[x<y]]></Key></Contents>"
      "<Empty/><IsTruncated>false</IsTruncated></ListBucketResult>");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  EXPECT_EQ(doc->name, "ListBucketResult");
  auto contents = doc->Children("Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(contents[0]->ChildText("Key"), "a&b <é中>");
  EXPECT_EQ(contents[0]->ChildText("ETag"), "\"e\"");
  EXPECT_EQ(contents[1]->ChildText("Key"), "x<y");
  EXPECT_NE(doc->Child("Empty"), nullptr);
  EXPECT_EQ(doc->Find("Key")->text, "a&b <é中>");
}

TEST(Xml, RejectsMalformed) {
  EXPECT_FALSE(ParseXml("").ok());
  EXPECT_FALSE(ParseXml("<a><b></a>").ok());
  EXPECT_FALSE(ParseXml("<a>&bogus;</a>").ok());
  EXPECT_FALSE(ParseXml("<a>").ok());
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  EXPECT_FALSE(ParseXml(deep).ok());
  EXPECT_EQ(ParseXml("<a>").error().code, ErrorCode::kUpstreamUnavailable);
}

}  // namespace
}  // namespace imagegen::aws
