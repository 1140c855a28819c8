module github.com/redms/redms/services/capture

go 1.26

replace github.com/redms/redms/pkg => ../../pkg
