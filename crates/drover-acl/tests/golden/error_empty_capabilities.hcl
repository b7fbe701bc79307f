site { capabilities = [] }
