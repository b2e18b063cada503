# The asynchronous stack: jobs arrive on SQS, the imagegen Lambda (the same binary as the HTTP
# service, as its own `bootstrap`) consumes them in batches and reports partial batch failures,
# failed messages move to a dead-letter queue, and an alarm on the age of the oldest job
# notifies an SNS topic.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  create_bucket = var.bucket_name == ""
  bucket_name   = local.create_bucket ? aws_s3_bucket.images[0].id : var.bucket_name
  bucket_arn    = "arn:${data.aws_partition.current.partition}:s3:::${local.bucket_name}"

  # AWS: "set the source queue's visibility timeout to at least six times the function timeout"
  # (a message being retried after throttling must not reappear while still in hand).
  visibility_timeout_s = max(var.visibility_timeout_s, 6 * var.lambda_timeout_s)

  log_group_name = "/aws/lambda/${var.name}"

  # Bedrock may be called in another region than the stack's (the Stability models are served
  # in us-west-2 only); the one model the role may invoke is named in that region.
  model_arn = var.model_id == "" ? "" : (
    "arn:${data.aws_partition.current.partition}:bedrock:${var.bedrock_region}::foundation-model/${var.model_id}"
  )
  # A bucket the stack creates lives in the stack's region; an existing one wherever bucket_region says.
  bucket_region = var.bucket_region == "" ? var.region : var.bucket_region

  # What `make -C deploy/sam zip ARCH=<architecture>` writes at the repository root.
  lambda_zip_path = var.lambda_zip_path != "" ? var.lambda_zip_path : (
    "${path.module}/../../build-sam-${var.architecture}/imagegen-lambda-${var.architecture}.zip"
  )
}

# --- storage --------------------------------------------------------------------------------

resource "aws_s3_bucket" "images" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a choice for the operator, not a default.
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket; enable it where required.
  #checkov:skip=CKV2_AWS_62:No consumer of object-created events in this stack.
  count         = local.create_bucket ? 1 : 0
  bucket_prefix = "${lower(var.name)}-"
}

resource "aws_s3_bucket_public_access_block" "images" {
  count                   = local.create_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.images[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "images" {
  #checkov:skip=CKV2_AWS_67:SSE-KMS with the AWS managed key; no customer key to rotate.
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.images[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "images" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.images[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

# Job records are kept for a bounded time (imagegen also hides expired ones at once).
resource "aws_s3_bucket_lifecycle_configuration" "images" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.images[0].id

  rule {
    id     = "expire-job-records"
    status = "Enabled"
    filter {
      prefix = "${var.key_prefix}jobs/"
    }
    expiration {
      days = var.job_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# --- queues ---------------------------------------------------------------------------------

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600 # 14 days: longer than the source queue's
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "jobs" {
  name                       = "${var.name}-jobs"
  visibility_timeout_seconds = local.visibility_timeout_s
  message_retention_seconds  = var.message_retention_s
  receive_wait_time_seconds  = 20 # long polling for any other consumer (imagegen worker)
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Only the job queue may use the DLQ as its dead-letter target.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

# --- function -------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:Logs are encrypted with the CloudWatch Logs service key.
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (30 days by default); set 365 where policy requires a year.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "${var.name}-function"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# Least privilege: this queue, this log group, this bucket prefix, this model. Nothing else.
data "aws_iam_policy_document" "function" {
  statement {
    sid       = "ConsumeJobQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.jobs.arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }

  statement {
    sid       = "ImagesAndJobRecords"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.bucket_arn}/${var.key_prefix}*"]
  }

  # Expired job records found on a read are deleted; images are never deleted by the function.
  statement {
    sid       = "ExpireJobRecords"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${var.key_prefix}jobs/*"]
  }

  # HeadObject on a missing key answers 404 (not 403) only with ListBucket; the pipeline relies
  # on that to tell "not generated yet" from "forbidden". Limited to the prefix.
  statement {
    sid       = "ListOwnPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.key_prefix}*"]
    }
  }

  statement {
    sid       = "XRayTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray has no resource-level permissions
  }

  dynamic "statement" {
    for_each = local.model_arn == "" ? [] : [local.model_arn]
    content {
      sid       = "InvokeModel"
      actions   = ["bedrock:InvokeModel"]
      resources = [statement.value]
    }
  }

  # Opt-in (allow_marketplace_subscription): a third-party model's one-time AWS Marketplace
  # subscription is made on its first invocation, by Bedrock, with the caller's permissions.
  # Marketplace has no resource-level permissions; the condition admits only calls Bedrock makes.
  dynamic "statement" {
    for_each = var.allow_marketplace_subscription ? [true] : []
    content {
      sid       = "FirstUseMarketplaceSubscriptionThroughBedrockOnly"
      actions   = ["aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe", "aws-marketplace:ViewSubscriptions"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "aws:CalledViaLast"
        values   = ["bedrock.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "${var.name}-function"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

resource "aws_lambda_function" "worker" {
  #checkov:skip=CKV_AWS_117:No VPC resources are used; a VPC would only add NAT cost and cold-start time.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the operator owns; the zip is built by CI from this repository.
  #checkov:skip=CKV_AWS_116:Failed messages go to the SQS queue's own dead-letter queue (redrive policy); a function DLQ only applies to asynchronous invocation.
  #checkov:skip=CKV_AWS_173:The environment holds names (bucket, prefix, model), no secrets.
  function_name                  = var.name
  role                           = aws_iam_role.function.arn
  filename                       = local.lambda_zip_path
  source_code_hash               = filebase64sha256(local.lambda_zip_path)
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  memory_size                    = var.lambda_memory_mb
  timeout                        = var.lambda_timeout_s
  reserved_concurrent_executions = var.lambda_reserved_concurrency

  environment {
    variables = {
      BUCKET_NAME   = local.bucket_name
      KEY_PREFIX    = var.key_prefix
      MODEL_ID      = var.model_id
      SQS_QUEUE_URL = aws_sqs_queue.jobs.url
      # Regions of the Bedrock calls and of the bucket (each defaults to AWS_REGION in imagegen).
      IMAGEGEN_BEDROCK_REGION = var.bedrock_region
      IMAGEGEN_S3_REGION      = local.bucket_region
      # A retryable failure on the last receive is recorded as failed in the job record.
      IMAGEGEN_MAX_ATTEMPTS = tostring(var.max_receive_count)
    }
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}

resource "aws_lambda_event_source_mapping" "jobs" {
  event_source_arn = aws_sqs_queue.jobs.arn
  function_name    = aws_lambda_function.worker.arn
  batch_size       = var.batch_size
  enabled          = true

  # One bad message must not send the whole batch back: the handler answers
  # {"batchItemFailures": [...]} and only those messages return to the queue.
  function_response_types = ["ReportBatchItemFailures"]

  # This bounds the function's concurrency (and its load on the model) without reserving any:
  # reserved concurrency fails on accounts whose quota is the new-account 10.
  scaling_config {
    maximum_concurrency = var.max_concurrency
  }
}

# --- alarm and dashboard --------------------------------------------------------------------

# CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key alias/aws/sns
# (its policy cannot be changed to admit cloudwatch.amazonaws.com): the topic has its own key.
data "aws_iam_policy_document" "alarms_key" {
  #checkov:skip=CKV_AWS_109:A key policy names only its own key ("*" is this key); the account root statement is what keeps the key manageable.
  #checkov:skip=CKV_AWS_111:A key policy names only its own key ("*" is this key); the account root statement is what keeps the key manageable.
  #checkov:skip=CKV_AWS_356:A key policy names only its own key ("*" is this key), so resources cannot be narrowed further.
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToTheTopic"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "alarms" {
  description             = "${var.name}: encrypts the alarm topic; CloudWatch alarms may use it to publish"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.alarms_key.json
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${var.name}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "oldest_job_age" {
  alarm_name          = "${var.name}-oldest-job-age"
  alarm_description   = "The oldest queued imagegen job has waited ${var.alarm_age_threshold_s}s or more: consumers are down, throttled or too few."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.jobs.name }
  statistic           = "Maximum"
  period              = var.alarm_period_s
  evaluation_periods  = var.alarm_evaluation_periods
  threshold           = var.alarm_age_threshold_s
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name}-dead-letters"
  alarm_description   = "Jobs reached the dead-letter queue (invalid or repeatedly failing)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_dashboard" "jobs" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Queue depth"
          region = var.region
          stat   = "Maximum"
          period = 60
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.jobs.name, { label = "waiting" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", aws_sqs_queue.jobs.name, { label = "in flight" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dlq.name, { label = "dead letters" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Age of oldest job (s)"
          region = var.region
          stat   = "Maximum"
          period = 60
          metrics = [
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.jobs.name],
          ]
          annotations = {
            horizontal = [{ label = "alarm", value = var.alarm_age_threshold_s }]
          }
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Invocations and errors"
          region = var.region
          stat   = "Sum"
          period = 60
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.worker.function_name],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.worker.function_name],
            ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.worker.function_name],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Duration and concurrency"
          region = var.region
          period = 60
          metrics = [
            ["AWS/Lambda", "Duration", "FunctionName", aws_lambda_function.worker.function_name, { stat = "p50" }],
            ["AWS/Lambda", "Duration", "FunctionName", aws_lambda_function.worker.function_name, { stat = "p99" }],
            ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", aws_lambda_function.worker.function_name, { stat = "Maximum", yAxis = "right" }],
          ]
        }
      },
    ]
  })
}
