terraform {
  # 1.10: use_lockfile (S3-native state locking) in the S3 backend; 1.9: validations that refer
  # to other variables (bedrock_region, bucket_region).
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 7.0.0"
    }
  }

  # Remote state in S3 (partial configuration: bucket, key, region and the lock table or
  # use_lockfile come from -backend-config, see backend.hcl.example and README.md).
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project   = "imagegen"
      Stack     = var.name
      ManagedBy = "terraform"
    })
  }
}
