variable "name" {
  description = "Name of the stack; prefixes every resource (queue, function, alarm, dashboard)."
  type        = string
  default     = "imagegen-async"

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,40}$", var.name))
    error_message = "name must be 1-40 characters of letters, digits and dashes."
  }
}

variable "region" {
  description = "AWS region of the stack (queues, function, alarm, and the bucket when the stack creates it)."
  type        = string
  default     = "us-east-1"
}

variable "bedrock_region" {
  description = "Region the function calls Bedrock in (IMAGEGEN_BEDROCK_REGION); the model must be served there. The Stability models are served in us-west-2 only (late 2026)."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.bedrock_region))
    error_message = "bedrock_region must be a region name such as us-west-2."
  }

  # The model and the region go together: refuse a pairing that would deploy and then fail every job.
  validation {
    condition     = !startswith(var.model_id, "stability.") || var.bedrock_region == "us-west-2"
    error_message = "Stability models (model_id stability.*) are served in us-west-2: set bedrock_region = \"us-west-2\" (the stack and the bucket may stay in any region)."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "lambda_zip_path" {
  description = "Path of the Lambda package: a zip whose `bootstrap` is the imagegen binary (provided.al2023). Empty: ../../build-sam-<architecture>/imagegen-lambda-<architecture>.zip, what `make -C deploy/sam zip ARCH=<architecture>` writes."
  type        = string
  default     = ""

  validation {
    condition     = var.lambda_zip_path == "" || endswith(var.lambda_zip_path, ".zip")
    error_message = "lambda_zip_path must be a .zip file (deploy/sam/.aws-sam/build/ImagegenFunction/ is a directory: use make -C deploy/sam zip)."
  }
}

variable "architecture" {
  description = "Instruction set the imagegen binary was built for: arm64 or x86_64 (the ARCH of `make -C deploy/sam zip`)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of the function in MB (CPU scales with it)."
  type        = number
  default     = 3008
}

variable "lambda_timeout_s" {
  description = "Function timeout in seconds; the queue's visibility timeout is derived from it (at least 6x)."
  type        = number
  default     = 120

  validation {
    condition     = var.lambda_timeout_s >= 10 && var.lambda_timeout_s <= 900
    error_message = "lambda_timeout_s must be 10..900."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrent executions of the function; -1 (the default): unreserved. Reserving any fails on accounts with the new-account quota of 10 (AWS keeps 10 unreserved); max_concurrency bounds the queue's load instead."
  type        = number
  default     = -1

  validation {
    condition     = var.lambda_reserved_concurrency >= -1
    error_message = "lambda_reserved_concurrency must be -1 (unreserved) or a number of executions."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's CloudWatch log group."
  type        = number
  default     = 30
}

variable "batch_size" {
  description = "SQS messages per invocation (each is one generation; failures are reported per message)."
  type        = number
  default     = 1

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10
    error_message = "batch_size must be 1..10 (a batching window is not used)."
  }
}

variable "max_concurrency" {
  description = "Most concurrent invocations the event source mapping drives (2..1000): the bound on the function's concurrency, with none reserved. The default fits an account whose quota is 10."
  type        = number
  default     = 5

  validation {
    condition     = var.max_concurrency >= 2 && var.max_concurrency <= 1000
    error_message = "max_concurrency must be 2..1000."
  }
}

variable "visibility_timeout_s" {
  description = "Queue visibility timeout in seconds; raised to 6x lambda_timeout_s when lower (AWS's guidance for SQS event sources)."
  type        = number
  default     = 0
}

variable "max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be 1..1000."
  }
}

variable "message_retention_s" {
  description = "How long the job queue keeps a message (the dead-letter queue keeps them 14 days, always longer)."
  type        = number
  default     = 345600
}

variable "bucket_name" {
  description = "Existing S3 bucket for images and job records; empty: the stack creates one (in region)."
  type        = string
  default     = ""
}

variable "bucket_region" {
  description = "Region of an existing bucket_name when it is not the stack's region (IMAGEGEN_S3_REGION); empty: region."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket_region == "" || can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.bucket_region))
    error_message = "bucket_region must be empty or a region name such as eu-west-1."
  }

  validation {
    condition     = var.bucket_region == "" || var.bucket_name != ""
    error_message = "bucket_region applies to an existing bucket_name; a bucket the stack creates is in region."
  }
}

variable "key_prefix" {
  description = "Owner prefix of image keys and job records inside the bucket (e.g. candidate-42/); the function may write only below it."
  type        = string
  default     = "images/"

  validation {
    condition     = var.key_prefix == "" || can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$", var.key_prefix))
    error_message = "key_prefix must be empty or end with / (e.g. images/)."
  }
}

variable "job_retention_days" {
  description = "Days finished job records (KEY_PREFIX/jobs/) are kept, when the stack creates the bucket."
  type        = number
  default     = 7
}

variable "model_id" {
  description = "Bedrock model id the function generates with (MODEL_ID), served in bedrock_region. The CI package leaves the LibTorch engine out (over the 250 MB zip limit), so keep a Bedrock model."
  type        = string
  default     = "stability.stable-image-core-v1:1"
}

variable "allow_marketplace_subscription" {
  description = "Let the function's role make the one-time AWS Marketplace subscription a third-party model (Stability) needs on its first invocation: aws-marketplace:Subscribe/Unsubscribe/ViewSubscriptions, only in calls made by Bedrock (aws:CalledViaLast)."
  type        = bool
  default     = false
}

variable "alarm_age_threshold_s" {
  description = "Alarm when the oldest queued job is at least this many seconds old."
  type        = number
  default     = 600
}

variable "alarm_period_s" {
  description = "Period of the age-of-oldest-message alarm in seconds (SQS metrics are per minute: 60 or a multiple)."
  type        = number
  default     = 60

  validation {
    condition     = var.alarm_period_s >= 60 && var.alarm_period_s % 60 == 0
    error_message = "alarm_period_s must be a multiple of 60."
  }
}

variable "alarm_evaluation_periods" {
  description = "Consecutive periods over the threshold before the alarm fires."
  type        = number
  default     = 3
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (confirm the subscription mail); empty: no subscription."
  type        = string
  default     = ""
}
