//! Hello world on AWS's Rust Lambda runtime: an API Gateway proxy event in, a small JSON out.
//! The Rust baseline of bench/lambda (the floor of what a custom runtime costs).
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{header::CONTENT_TYPE, HeaderMap, HeaderValue};
use lambda_runtime::{service_fn, Error, LambdaEvent};

async fn handler(event: LambdaEvent<ApiGatewayProxyRequest>) -> Result<ApiGatewayProxyResponse, Error> {
    let path = event.payload.path.unwrap_or_default();
    let body = serde_json::json!({ "message": "hello", "path": path }).to_string();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response.headers = headers;
    response.body = Some(Body::Text(body));
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
