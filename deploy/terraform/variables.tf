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
  description = "AWS region of the stack."
  type        = string
  default     = "us-east-1"
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "lambda_zip_path" {
  description = "Path of the Lambda package: a zip whose `bootstrap` is the imagegen binary (provided.al2023)."
  type        = string
  default     = "../../build-lambda/imagegen-lambda.zip"
}

variable "lambda_architecture" {
  description = "Instruction set the imagegen binary was built for: arm64 or x86_64."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
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
  description = "Reserved concurrent executions of the function (caps spend and load on the model); -1: unreserved."
  type        = number
  default     = 10
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
  description = "Most concurrent invocations the event source mapping drives (2..1000)."
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
  description = "Existing S3 bucket for images and job records; empty: the stack creates one."
  type        = string
  default     = ""
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
  description = "Bedrock model id the function generates with (MODEL_ID). The CI package leaves the LibTorch engine out (over the 250 MB zip limit), so keep a Bedrock model."
  type        = string
  default     = "stability.stable-image-core-v1:1"
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
