output "queue_url" {
  description = "URL of the job queue: pass it to `imagegen submit --queue` or set SQS_QUEUE_URL."
  value       = aws_sqs_queue.jobs.url
}

output "queue_arn" {
  description = "ARN of the job queue."
  value       = aws_sqs_queue.jobs.arn
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue (inspect, then redrive with aws sqs start-message-move-task)."
  value       = aws_sqs_queue.dlq.url
}

output "visibility_timeout_s" {
  description = "Visibility timeout the job queue was given (at least 6x the function timeout)."
  value       = aws_sqs_queue.jobs.visibility_timeout_seconds
}

output "function_name" {
  description = "Name of the queue-triggered imagegen function."
  value       = aws_lambda_function.worker.function_name
}

output "function_arn" {
  description = "ARN of the function."
  value       = aws_lambda_function.worker.arn
}

output "function_role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.function.arn
}

output "bucket_name" {
  description = "Bucket the images and job records are written to."
  value       = local.bucket_name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_name" {
  description = "Name of the ApproximateAgeOfOldestMessage alarm."
  value       = aws_cloudwatch_metric_alarm.oldest_job_age.alarm_name
}

output "dashboard_url" {
  description = "CloudWatch dashboard of the stack."
  value       = "https://${var.region}.console.aws.amazon.com/cloudwatch/home?region=${var.region}#dashboards:name=${aws_cloudwatch_dashboard.jobs.dashboard_name}"
}
